"""Streaming replicas of the embedded cluster on this machine (`jxplan db replica ...`).

A replica is a copy taken with PostgreSQL's own `pg_basebackup -R` through a physical replication slot of
the primary, kept in a directory beside the primary's and run as the same user. Its state file (port and
directory) sits in the data directory, readable by its owner only; its URL holds the cluster's password, so
it is printed only when asked for (`--show-url`) and never logged.
"""

from __future__ import annotations

import json
import os
import re
import shutil
from dataclasses import dataclass
from pathlib import Path

from sqlalchemy import create_engine, text

from geo_service.db.embedded import DB_USER, ClusterError, EmbeddedCluster, find_pg_bin, free_port

_NAME = re.compile(r"[a-z][a-z0-9_]{0,30}")


@dataclass
class StandbyState:
    """What jxplan remembers about one replica."""

    name: str
    pgdata: str
    port: int

    @property
    def slot(self) -> str:
        return f"jxplan_replica_{self.name}"


class Standby:
    """One replica of the embedded cluster: start (creating it on first use), stop, status, remove."""

    def __init__(self, primary: EmbeddedCluster, name: str = "r1") -> None:
        if not _NAME.fullmatch(name):
            raise ClusterError(f"A replica name is lower-case letters, digits and _ (got {name!r}).")
        self.primary = primary
        self.name = name
        self.state_file = primary.data_dir / "replicas" / f"{name}.json"

    def state(self) -> StandbyState | None:
        if not self.state_file.exists():
            return None
        return StandbyState(**json.loads(self.state_file.read_text()))

    def _save(self, state: StandbyState) -> None:
        self.state_file.parent.mkdir(parents=True, exist_ok=True)
        tmp = self.state_file.with_suffix(".tmp")
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "w") as fh:
            json.dump(state.__dict__, fh)
        tmp.replace(self.state_file)

    def _primary(self) -> tuple[str, int]:
        state, port = self.primary.state(), self.primary.running_port()
        if state is None or port is None:
            raise ClusterError("The embedded PostGIS is not running; start it with `jxplan db start`.")
        return state.password, port

    def _create(self) -> StandbyState:
        password, port = self._primary()
        primary_state = self.primary.state()
        assert primary_state is not None
        root = Path(primary_state.pgdata).parent / "replicas"
        root.mkdir(parents=True, exist_ok=True)
        self.primary._chown_to_server_user(root)
        state = StandbyState(self.name, str(root / self.name), free_port())
        shutil.rmtree(state.pgdata, ignore_errors=True)
        # the password reaches pg_basebackup through a file only its user can read, not the command line
        passfile = root / f".pgpass-{self.name}"
        fd = os.open(passfile, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "w") as fh:
            fh.write(f"127.0.0.1:{port}:*:{DB_USER}:{password}\n")
        self.primary._chown_to_server_user(passfile)
        self._allow_replication(Path(primary_state.pgdata))
        self._drop_slot(state)
        try:
            self.primary._run(
                [
                    str(find_pg_bin() / "pg_basebackup"),
                    "-d",
                    f"host=127.0.0.1 port={port} user={DB_USER} passfile={passfile}",
                    "-D",
                    state.pgdata,
                    "-R",
                    "-X",
                    "stream",
                    "-C",
                    "-S",
                    state.slot,
                    "--checkpoint=fast",
                ]
            )
        finally:
            passfile.unlink(missing_ok=True)
        # -R wrote primary_conninfo with the passfile, which is gone: the replica keeps the password in its
        # own configuration (in its directory, readable by the server user only)
        auto = Path(state.pgdata) / "postgresql.auto.conf"
        conninfo = (
            f"host=127.0.0.1 port={port} user={DB_USER} password={password} application_name={self.name}"
        )
        text = "\n".join(
            line for line in auto.read_text().splitlines() if not line.startswith("primary_conninfo")
        )
        auto.write_text(f"{text}\nprimary_conninfo = '{conninfo}'\n")
        os.chmod(auto, 0o600)
        self._save(state)
        return state

    def running_port(self) -> int | None:
        state = self.state()
        if state is None:
            return None
        try:
            lines = (Path(state.pgdata) / "postmaster.pid").read_text().splitlines()
        except OSError:
            return None
        if len(lines) < 4 or not lines[0].isdigit():
            return None
        try:
            os.kill(int(lines[0]), 0)
        except PermissionError:
            pass
        except OSError:
            return None
        return int(lines[3])

    def pid(self) -> int | None:
        state = self.state()
        if state is None or self.running_port() is None:
            return None
        return int((Path(state.pgdata) / "postmaster.pid").read_text().split()[0])

    def start(self) -> bool:
        """Start the replica, taking its copy first if there is none; True when this call started it."""
        state = self.state()
        if state is None or not (Path(state.pgdata) / "PG_VERSION").exists():
            state = self._create()
        if self.running_port() is not None:
            return False
        pid_file = Path(state.pgdata) / "postmaster.pid"
        pid_file.unlink(missing_ok=True)  # a killed replica's lock file (running_port said it is gone)
        log = Path(state.pgdata).parent / f"{self.name}.log"
        options = f"-p {state.port} -c listen_addresses=127.0.0.1 -c unix_socket_directories=''"
        self.primary._run(
            [str(find_pg_bin() / "pg_ctl"), "-D", state.pgdata, "-l", str(log), "-o", options, "-w", "start"]
        )
        return True

    def stop(self, *, immediate: bool = False) -> None:
        state = self.state()
        if state is None or self.running_port() is None:
            return
        mode = "immediate" if immediate else "fast"
        self.primary._run(
            [str(find_pg_bin() / "pg_ctl"), "-D", state.pgdata, "-m", mode, "-w", "stop"], check=False
        )

    def remove(self) -> None:
        """Stop the replica, drop its slot on the primary (else the primary keeps WAL for it) and its data."""
        state = self.state()
        self.stop()
        if state is None:
            return
        if self.primary.running_port() is not None:
            self._drop_slot(state)
        shutil.rmtree(state.pgdata, ignore_errors=True)
        self.state_file.unlink(missing_ok=True)

    def _allow_replication(self, pgdata: Path) -> None:
        """Make sure the primary lets the cluster's user replicate from 127.0.0.1 with its password (initdb's
        pg_hba.conf does; one edited since may not)."""
        hba = pgdata / "pg_hba.conf"
        lines = [line.split() for line in hba.read_text().splitlines() if not line.lstrip().startswith("#")]
        if any(f[:2] == ["host", "replication"] and f[3:4] == ["127.0.0.1/32"] for f in lines):
            return
        with hba.open("a") as fh:
            fh.write(f"host    replication     {DB_USER}     127.0.0.1/32     scram-sha-256\n")
        self.primary._run([str(find_pg_bin() / "pg_ctl"), "-D", str(pgdata), "reload"])

    def _drop_slot(self, state: StandbyState) -> None:
        password, port = self._primary()
        engine = create_engine(
            f"postgresql+psycopg://{DB_USER}:{password}@127.0.0.1:{port}/postgres",
            isolation_level="AUTOCOMMIT",
        )
        try:
            with engine.connect() as conn:
                conn.execute(
                    text(
                        "SELECT pg_drop_replication_slot(slot_name) FROM pg_replication_slots"
                        " WHERE slot_name = :s"
                    ),
                    {"s": state.slot},
                )
        finally:
            engine.dispose()

    def url(self, database: str = "jxplan") -> str:
        """The replica's URL (with the password: for JXPLAN_READ_DATABASE_URLS, never for a log)."""
        state, port = self.state(), self.running_port()
        primary = self.primary.state()
        if state is None or port is None or primary is None:
            raise ClusterError(
                f"Replica {self.name} is not running; start it with `jxplan db replica start`."
            )
        return f"postgresql+psycopg://{DB_USER}:{primary.password}@127.0.0.1:{port}/{database}"
