"""The embedded PostGIS: a private PostgreSQL cluster in the project's data directory, run by `jxplan`.

PostgreSQL refuses to run as root, so when jxplan runs as root the cluster's files belong to the
unprivileged `postgres` system user and every server command runs as that user.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import pwd
import secrets
import shutil
import socket
import subprocess
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

SERVER_USER = "postgres"
DB_USER = "jxplan"


class ClusterError(RuntimeError):
    """The embedded cluster cannot be set up or started; the message says what to do."""


def _is_root() -> bool:
    return os.geteuid() == 0


def find_pg_bin() -> Path:
    """The bin directory of the newest installed PostgreSQL that has PostGIS."""
    candidates = sorted(
        Path("/usr/lib/postgresql").glob("*/bin"), key=lambda p: int(p.parent.name), reverse=True
    )
    for bin_dir in candidates:
        version = bin_dir.parent.name
        if (bin_dir / "initdb").exists() and Path(
            f"/usr/share/postgresql/{version}/extension/postgis.control"
        ).exists():
            return bin_dir
    raise ClusterError(
        "PostgreSQL with PostGIS is not installed. Run `make run` (it installs them as root or via sudo), "
        "or install them yourself: apt-get install postgresql postgresql-15-postgis-3 — "
        "or set DATABASE_URL to an existing PostGIS."
    )


def free_port() -> int:
    """A TCP port on 127.0.0.1 that nothing listens on now."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _port_free(port: int) -> bool:
    """Whether PostgreSQL could listen on `port` now. It binds with SO_REUSEADDR, so the probe does too:
    right after a stop the port still holds the closing connections of the old server (FIN-WAIT, TIME-WAIT),
    which would make it look busy and move the cluster to another port."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind(("127.0.0.1", port))
        except OSError:
            return False
    return True


def _zombie(pid: int) -> bool:
    """Whether process `pid` has exited but is not yet reaped by its parent (state Z in /proc)."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return False
    return stat.rpartition(")")[2].split()[:1] == ["Z"]


def _alive(pid: int) -> bool:
    """Whether process `pid` runs (a zombie does not: a killed postmaster may linger as one where the
    init process is slow to reap orphans, as in some containers)."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        pass  # alive, owned by the server user
    return not _zombie(pid)


@dataclass
class ClusterState:
    """What jxplan remembers about its cluster: where it lives and the generated password."""

    pgdata: str
    password: str
    port: int

    def save(self, path: Path) -> None:
        """Write the state file readable by its owner only (it holds the database password)."""
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_suffix(".tmp")
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "w") as fh:
            json.dump(self.__dict__, fh)
        tmp.replace(path)


class EmbeddedCluster:
    """Start, stop and connect to the project's private PostgreSQL cluster."""

    def __init__(self, data_dir: Path) -> None:
        self.data_dir = data_dir.resolve()
        self.state_file = self.data_dir / "cluster.json"

    # -- where things are -------------------------------------------------------------------------

    def _default_root(self) -> Path:
        root = self.data_dir / "postgres"
        if _is_root() and not self._server_user_can_reach(self.data_dir):
            # e.g. a clone under /root: the postgres user cannot traverse it, so keep the cluster in
            # a system directory named after this project's path.
            digest = hashlib.sha1(str(self.data_dir).encode()).hexdigest()[:12]
            root = Path("/var/lib/jxplan") / digest
        return root

    @staticmethod
    def _server_user_can_reach(path: Path) -> bool:
        probe = path
        while not probe.exists():
            probe = probe.parent
        result = subprocess.run(
            ["runuser", "-u", SERVER_USER, "--", "test", "-x", str(probe)], capture_output=True, check=False
        )
        return result.returncode == 0

    def state(self) -> ClusterState | None:
        """The saved state, or None before the first initialisation."""
        if not self.state_file.exists():
            return None
        return ClusterState(**json.loads(self.state_file.read_text()))

    # -- running commands as the right user -------------------------------------------------------

    def _run(self, args: list[str], *, check: bool = True) -> subprocess.CompletedProcess[str]:
        if _is_root():
            args = ["runuser", "-u", SERVER_USER, "--", *args]
        result = subprocess.run(args, capture_output=True, text=True, check=False, cwd="/")
        if check and result.returncode != 0:
            raise ClusterError(f"`{' '.join(args)}` failed:\n{result.stdout}{result.stderr}")
        return result

    def _chown_to_server_user(self, path: Path) -> None:
        if _is_root():
            entry = pwd.getpwnam(SERVER_USER)
            os.chown(path, entry.pw_uid, entry.pw_gid)

    # -- life cycle --------------------------------------------------------------------------------

    def initialize(self) -> ClusterState:
        """Create the cluster on first use (initdb with a generated password); reuse it afterwards."""
        existing = self.state()
        if existing and (Path(existing.pgdata) / "PG_VERSION").exists():
            return existing
        if _is_root():
            try:
                pwd.getpwnam(SERVER_USER)
            except KeyError as exc:
                raise ClusterError(
                    "The `postgres` system user is missing; install PostgreSQL (apt-get install postgresql)."
                ) from exc
        bin_dir = find_pg_bin()
        root = self._default_root()
        pgdata = root / "pgdata"
        root.mkdir(parents=True, exist_ok=True)
        self._chown_to_server_user(root)
        password = secrets.token_urlsafe(24)
        with tempfile.NamedTemporaryFile("w", delete=False, dir=root, prefix="pw") as fh:
            fh.write(password + "\n")
            pwfile = Path(fh.name)
        os.chmod(pwfile, 0o600)
        self._chown_to_server_user(pwfile)
        try:
            self._run(
                [
                    str(bin_dir / "initdb"),
                    "-D",
                    str(pgdata),
                    "-U",
                    DB_USER,
                    "--pwfile",
                    str(pwfile),
                    "--auth=scram-sha-256",
                    "--encoding=UTF8",
                    "--no-locale",
                ]
            )
        finally:
            pwfile.unlink(missing_ok=True)
        state = ClusterState(pgdata=str(pgdata), password=password, port=free_port())
        state.save(self.state_file)
        return state

    def running_port(self) -> int | None:
        """The port of the running server, or None when it is not running."""
        state = self.state()
        if state is None:
            return None
        pid_file = Path(state.pgdata) / "postmaster.pid"
        try:
            lines = pid_file.read_text().splitlines()
        except (FileNotFoundError, PermissionError):
            return None
        if len(lines) < 4 or not lines[0].isdigit() or not _alive(int(lines[0])):
            return None
        return int(lines[3])

    def _clear_dead_lock_file(self, state: ClusterState) -> None:
        """Remove the lock file of a postmaster that was killed but not yet reaped by its parent (a zombie:
        PostgreSQL would take it for a running server and refuse to start). A zombie holds no memory, socket
        or file, so this is what PostgreSQL itself does with the lock file of a vanished postmaster."""
        pid_file = Path(state.pgdata) / "postmaster.pid"
        with contextlib.suppress(OSError, ValueError, IndexError):
            if _zombie(int(pid_file.read_text().split()[0])):
                pid_file.unlink()

    def start(self) -> bool:
        """Start the server if it is not running; True when this call started it."""
        state = self.initialize()
        if self.running_port() is not None:
            return False
        self._clear_dead_lock_file(state)
        bin_dir = find_pg_bin()
        if not _port_free(state.port):
            state.port = free_port()
            state.save(self.state_file)
        log = Path(state.pgdata).parent / "server.log"
        options = f"-p {state.port} -c listen_addresses=127.0.0.1 -c unix_socket_directories=''"
        self._run([str(bin_dir / "pg_ctl"), "-D", state.pgdata, "-l", str(log), "-o", options, "-w", "start"])
        for _ in range(50):
            if self.running_port() is not None:
                return True
            time.sleep(0.1)
        raise ClusterError(f"PostgreSQL did not start; see {log}")

    def stop(self) -> None:
        """Stop the server (fast shutdown: open sessions are ended, data is safe)."""
        state = self.state()
        if state is None or self.running_port() is None:
            return
        self._run(
            [str(find_pg_bin() / "pg_ctl"), "-D", state.pgdata, "-m", "fast", "-w", "stop"], check=False
        )

    def current_port(self) -> int | None:
        """Where the cluster listens: the running server's port, else the saved one (a connection there is
        refused until it starts again); None before the first initialisation."""
        state = self.state()
        if state is None:
            return None
        return self.running_port() or state.port

    def url(self, database: str = "jxplan") -> str:
        """SQLAlchemy URL of a database in the running cluster."""
        state = self.state()
        port = self.running_port()
        if state is None or port is None:
            raise ClusterError("The embedded PostGIS is not running; start it with `jxplan db start`.")
        return f"postgresql+psycopg://{DB_USER}:{state.password}@127.0.0.1:{port}/{database}"

    def destroy(self) -> None:
        """Stop the cluster and delete all its data (used by `jxplan db destroy`)."""
        state = self.state()
        self.stop()
        if state is not None:
            shutil.rmtree(Path(state.pgdata).parent, ignore_errors=True)
        self.state_file.unlink(missing_ok=True)
