"""The HTTP servers under test, each a uvicorn process started (and stopped) by the harness: this service,
and tipg from its own virtual environment (benchmarks/.venv-tipg, installed with pip on first use)."""

from __future__ import annotations

import os
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from types import TracebackType

import httpx

from benchmarks.database import TIPG_SCHEMA
from geo_service.db.embedded import free_port
from geo_service.settings import PROJECT_ROOT

BENCH_DIR = PROJECT_ROOT / "benchmarks"
TIPG_VENV = BENCH_DIR / ".venv-tipg"
OUTPUT = BENCH_DIR / "output"
TIPG_PACKAGES = ("tipg", "uvicorn[standard]")  # uvicorn with uvloop and httptools, as the service has


def _venv_python(venv: Path) -> Path:
    return venv / "bin" / "python"


def ensure_tipg(*, reinstall: bool = False) -> str:
    """tipg in benchmarks/.venv-tipg (created and filled by pip the first time); its version."""
    python = _venv_python(TIPG_VENV)
    if reinstall or not python.exists():
        print(f"Creating {TIPG_VENV.relative_to(PROJECT_ROOT)} …", flush=True)
        subprocess.run([sys.executable, "-m", "venv", "--clear", str(TIPG_VENV)], check=True)
    probe = [str(python), "-c", "import importlib.metadata as m; print(m.version('tipg'))"]
    found = subprocess.run(probe, capture_output=True, text=True, check=False)
    if found.returncode != 0:
        print("Installing tipg with pip …", flush=True)
        subprocess.run(
            [str(python), "-m", "pip", "install", "--quiet", "--disable-pip-version-check", *TIPG_PACKAGES],
            check=True,
        )
        found = subprocess.run(probe, capture_output=True, text=True, check=True)
    return found.stdout.strip()


def rss_bytes(pid: int, field_name: str = "VmRSS") -> int | None:
    """Resident memory of a process from /proc (VmRSS now, VmHWM its peak); None where unreadable."""
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith(field_name + ":"):
                return int(line.split()[1]) * 1024
    except (OSError, ValueError, IndexError):
        return None
    return None


@dataclass
class Server:
    """One uvicorn process serving `app`, on a free port of 127.0.0.1."""

    name: str
    python: Path
    app: list[str]  # uvicorn's application arguments
    env: dict[str, str]
    ready_path: str
    port: int = field(default_factory=free_port)
    process: subprocess.Popen[bytes] | None = None
    log_path: Path | None = None
    command: list[str] | None = None  # instead of uvicorn: a command listening on PORT (e.g. `jxplan serve`)

    @property
    def base_url(self) -> str:
        """Where it answers."""
        return f"http://127.0.0.1:{self.port}"

    @property
    def pid(self) -> int:
        """The process started (uvicorn's: the server itself; `jxplan serve --workers N`: their parent)."""
        assert self.process is not None
        return self.process.pid

    def start(self, timeout: float = 120.0) -> None:
        """Start the process and wait until `ready_path` answers 200."""
        OUTPUT.mkdir(parents=True, exist_ok=True)
        self.log_path = OUTPUT / f"{self.name}.log"
        command = self.command or [
            str(self.python),
            "-m",
            "uvicorn",
            *self.app,
            "--host",
            "127.0.0.1",
            "--port",
            str(self.port),
            "--log-level",
            "warning",
            "--no-access-log",
        ]
        with self.log_path.open("wb") as log:
            # a scratch working directory: neither server may pick up a stray .env file
            self.process = subprocess.Popen(
                command,
                env={**os.environ, **self.env, **({"PORT": str(self.port)} if self.command else {})},
                stdout=log,
                stderr=subprocess.STDOUT,
                cwd=tempfile.gettempdir(),
            )
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(f"{self.name} exited at start; see {self.log_path}")
            try:
                if httpx.get(self.base_url + self.ready_path, timeout=5).status_code == 200:
                    return
            except httpx.HTTPError:
                pass
            time.sleep(0.25)
        self.stop()
        raise RuntimeError(f"{self.name} did not answer within {timeout:.0f} s; see {self.log_path}")

    def peak_rss(self) -> int | None:
        """The highest resident memory of the process so far."""
        return rss_bytes(self.pid, "VmHWM") if self.process else None

    def stop(self) -> None:
        """Stop the process this object started (SIGTERM, then SIGKILL after 15 s)."""
        if self.process is None or self.process.poll() is not None:
            return
        self.process.terminate()
        try:
            self.process.wait(timeout=15)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()

    def __enter__(self) -> Server:
        self.start()
        return self

    def __exit__(
        self, kind: type[BaseException] | None, error: BaseException | None, trace: TracebackType | None
    ) -> None:
        self.stop()


def service_server(database_url: str, tile_cache_mb: int = 0) -> Server:
    """This service with the benchmark layers on (one process, the settings' default pool); its tile cache
    off unless asked for, so that every tile is cut by PostGIS, as tipg (which has none) cuts it."""
    return Server(
        name="service",
        python=Path(sys.executable),
        app=["geo_service.app:create_app", "--factory"],
        env={
            "DATABASE_URL": database_url,
            "JXPLAN_BENCH_LAYERS": "1",
            "JXPLAN_TILE_CACHE_MB": str(tile_cache_mb),
        },
        ready_path="/collections?f=json",
    )


def tipg_server(libpq_url: str) -> Server:
    """tipg serving the `bench` schema only; no catalogue refresh during the run, the tile buffer of our
    tiles (64 of 4096), and no cap on the features of a tile (ours has none)."""
    return Server(
        name="tipg",
        python=_venv_python(TIPG_VENV),
        app=["tipg.main:app"],
        env={
            "DATABASE_URL": libpq_url,
            "TIPG_DB_SCHEMAS": f'["{TIPG_SCHEMA}"]',
            "TIPG_CATALOG_TTL": "0",
            "TIPG_TILE_BUFFER": "64",
            "TIPG_MAX_FEATURES_PER_TILE": "10000000",
        },
        ready_path="/healthz",
    )


def jxplan_server(
    name: str,
    database_url: str,
    *,
    workers: int = 1,
    tile_cache_mb: int = 32,
    env: dict[str, str] | None = None,
) -> Server:
    """`jxplan serve --workers N` with the benchmark layers on, on 127.0.0.1, its access log off (as the
    uvicorn servers above have none), the tile cache of `tile_cache_mb` per process."""
    jxplan = Path(sys.executable).parent / "jxplan"
    return Server(
        name=name,
        python=Path(sys.executable),
        app=[],
        env={
            "DATABASE_URL": database_url,
            "JXPLAN_HOST": "127.0.0.1",
            "JXPLAN_BENCH_LAYERS": "1",
            "JXPLAN_TILE_CACHE_MB": str(tile_cache_mb),
            "JXPLAN_ACCESS_LOG": "0",
            "JXPLAN_LOG_LEVEL": "warning",
            **(env or {}),
        },
        ready_path="/collections?f=json",
        command=[str(jxplan), "serve", "--workers", str(workers)],
    )
