"""A streaming replica of the benchmark's embedded cluster for the scale benchmark, made as
`jxplan db replica start` makes one: `pg_basebackup -R` (the standby's connection settings written for it),
started on a free port of 127.0.0.1 in a scratch directory, stopped and removed afterwards."""

from __future__ import annotations

import os
import pwd
import shutil
import subprocess
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from sqlalchemy import text
from sqlalchemy.engine import make_url

from geo_service.db.embedded import SERVER_USER, find_pg_bin, free_port
from geo_service.db.engine import sync_engine


def _as_server_user(args: list[str], env: dict[str, str] | None = None, *, check: bool = True) -> None:
    if os.geteuid() == 0:  # PostgreSQL refuses root: its files and commands belong to `postgres`
        args = ["runuser", "-u", SERVER_USER, "--", *args]
    done = subprocess.run(
        args, capture_output=True, text=True, check=False, cwd="/", env={**os.environ, **(env or {})}
    )
    if check and done.returncode != 0:
        raise RuntimeError(f"`{' '.join(args)}` failed: {done.stderr.strip()[-400:]}")


@contextmanager
def streaming_replica(primary_url: str, timeout: float = 120.0) -> Iterator[str]:
    """A hot standby of the cluster `primary_url` is on, its data in a scratch directory; yields the URL of
    the same database on the replica once it is in recovery and answers."""
    primary = make_url(primary_url)
    directory = Path(tempfile.mkdtemp(prefix="jxplan-replica-"))
    if os.geteuid() == 0:
        entry = pwd.getpwnam(SERVER_USER)
        os.chown(directory, entry.pw_uid, entry.pw_gid)
    pgdata = directory / "pgdata"
    bin_dir = find_pg_bin()
    password = {"PGPASSWORD": primary.password or ""}
    _as_server_user(
        [
            str(bin_dir / "pg_basebackup"),
            "-D",
            str(pgdata),
            "-R",
            "-X",
            "stream",
            "-c",
            "fast",
            "-h",
            primary.host or "127.0.0.1",
            "-p",
            str(primary.port),
            "-U",
            primary.username or "",
        ],
        password,
    )
    port = free_port()
    options = f"-p {port} -c listen_addresses=127.0.0.1 -c unix_socket_directories='' -c hot_standby=on"
    log = directory / "replica.log"
    _as_server_user(
        [str(bin_dir / "pg_ctl"), "-D", str(pgdata), "-l", str(log), "-o", options, "-w", "start"]
    )
    url = primary.set(port=port).render_as_string(hide_password=False)
    try:
        engine = sync_engine(url)
        deadline = time.monotonic() + timeout
        try:
            while True:
                try:
                    with engine.connect() as conn:
                        if conn.scalar(text("SELECT pg_is_in_recovery()")):
                            break
                except Exception:  # not accepting connections yet
                    if time.monotonic() > deadline:
                        raise
                time.sleep(0.2)
        finally:
            engine.dispose()
        yield url
    finally:
        _as_server_user([str(bin_dir / "pg_ctl"), "-D", str(pgdata), "-m", "fast", "-w", "stop"], check=False)
        shutil.rmtree(directory, ignore_errors=True)
