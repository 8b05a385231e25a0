"""The one settings object: every knob is an environment variable with a safe default."""

from functools import lru_cache
from pathlib import Path
from typing import Annotated, Any, Literal

from pydantic import Field, IPvAnyNetwork, field_validator
from pydantic_settings import BaseSettings, NoDecode, SettingsConfigDict

PROJECT_ROOT = Path(__file__).resolve().parent.parent


class Settings(BaseSettings):
    """Service configuration, read from `JXPLAN_*` environment variables (and `DATABASE_URL`, `PORT`)."""

    model_config = SettingsConfigDict(env_prefix="JXPLAN_", extra="ignore", populate_by_name=True)

    database_url: str | None = Field(
        default=None,
        validation_alias="DATABASE_URL",
        description="PostGIS to use; unset means the embedded cluster managed by jxplan.",
    )
    host: str = "127.0.0.1"
    port: int = Field(default=8000, ge=1, le=65535, validation_alias="PORT")
    data_dir: Path = Field(default=PROJECT_ROOT / ".data", description="Embedded cluster and its secrets.")
    layers_dir: Path = PROJECT_ROOT / "layers"
    maps_dir: Path = PROJECT_ROOT / "maps"
    bench_layers: bool = Field(
        default=False,
        description="Also serve the synthetic benchmark layers of layers/bench.yaml (see `jxplan bench`).",
    )
    public_url: str | None = Field(
        default=None, description="Base URL clients see, when behind a proxy (e.g. https://gis.example.org)."
    )
    workers: int = Field(
        default=1,
        ge=1,
        le=64,
        description="Service processes behind the one port (`jxplan serve --workers N`); each keeps its own "
        "tile cache, failed-login counter and metrics (docs/deployment.md, Workers).",
    )
    worker_timeout_s: int = Field(
        default=30,
        ge=1,
        description="With several workers: a worker that does not answer its supervisor's check for this "
        "long (seconds; starting included) is killed and replaced.",
    )
    read_database_urls: Annotated[list[str], NoDecode] = Field(
        default=[],
        description="Read replicas (PostgreSQL URLs, comma-separated) for pages, features, tiles and counts; "
        "writes, history, downloads and /ready stay on the primary (docs/deployment.md, Read replicas).",
    )
    replica_check_ms: int = Field(
        default=1000, ge=50, description="How often each replica's recovery state and lag are checked (ms)."
    )
    replica_max_lag_ms: int = Field(
        default=5000, ge=0, description="A replica further behind the primary than this (ms) is skipped."
    )
    replica_retry_ms: int = Field(
        default=5000,
        ge=50,
        description="A skipped (down, promoted or lagging) replica is tried again after this.",
    )
    read_after_write_wait_ms: int = Field(
        default=250,
        ge=0,
        le=10_000,
        description="A read carrying JXPlan-Read-After waits this long (ms) for a replica to replay that "
        "write before it is read from the primary.",
    )
    default_limit: int = Field(default=100, ge=1)
    max_limit: int = Field(default=10000, ge=1)
    pool_size: int = Field(default=10, ge=1)
    db_wait_ms: int = Field(
        default=1500,
        ge=100,
        le=60_000,
        description="Longest a request waits for a database connection (pool, connect) before it is answered "
        "503 with Retry-After; the connect timeout is this in whole seconds, at least 2 (libpq's floor).",
    )
    read_timeout_ms: int = Field(
        default=30_000,
        ge=1,
        description="Longest a statement of the service (a page, feature, tile or download; a write) may run "
        "in PostgreSQL: past it, it is cancelled there and answered with a problem saying how to narrow it.",
    )
    retry_after_s: int = Field(
        default=5, ge=1, description="Retry-After (seconds) of a 503 while the database is unavailable."
    )
    tile_cache_mb: int = Field(
        default=32, ge=0, description="Memory for vector tiles per process, kept by layer version (0: none)."
    )
    exact_count_threshold: int = Field(
        default=100_000, ge=0, description="Filtered counts above this are estimated, not counted."
    )
    basemap: str = Field(default="none", description="Default basemap of the maps: none | osm.")
    tianditu_key: str | None = Field(default=None, description="Key for 天地图 basemap tiles (optional).")
    auth_failures: int = Field(
        default=10,
        ge=1,
        description="Failed authentications a client address may make per window before 429.",
    )
    auth_window_s: int = Field(default=60, ge=1, description="The window of auth_failures, in seconds.")
    trusted_proxies: Annotated[list[IPvAnyNetwork], NoDecode] = Field(
        default=[], description="Proxies (IPs or CIDRs, comma-separated) whose X-Forwarded-For is believed."
    )
    cors_write_origins: Annotated[list[str], NoDecode] = Field(
        default=[],
        description="Origins (scheme://host[:port], comma-separated) whose pages may write (reads: any).",
    )
    import_max_features: int = Field(
        default=20_000, ge=1, description="Most features one import (file upload or jxplan import) may hold."
    )
    import_max_unpacked_mb: int = Field(
        default=512,
        ge=1,
        description="Most data a zipped import may unpack to, in MB (zip bombs are refused).",
    )
    job_ttl_s: int = Field(
        default=86_400,
        ge=60,
        description="How long an asynchronous job (OGC API – Processes) and its results are kept (seconds).",
    )
    jobs_per_client: int = Field(
        default=4,
        ge=1,
        description="Asynchronous jobs one client address may have waiting or running at once (then 429).",
    )
    jobs_kept_per_client: int = Field(
        default=100,
        ge=1,
        description="Jobs one client address may keep (waiting, running or finished, not dismissed) before "
        "it must dismiss some (then 429); each is kept JXPLAN_JOB_TTL_S with its inputs and results.",
    )
    job_workers: int = Field(
        default=2, ge=0, description="Jobs each service process runs at once (0: this process runs none)."
    )
    job_shutdown_s: float = Field(
        default=5.0,
        ge=0,
        description="On shutdown, how long running jobs may finish; then they go back to the queue.",
    )
    access_log: bool = Field(
        default=True, description="One line per request on the `geo_service.access` logger (jxplan serve)."
    )
    log_format: Literal["json", "text"] = Field(
        default="json", description="Log lines as JSON objects (for a log collector) or as plain text."
    )
    log_level: Literal["debug", "info", "warning", "error"] = Field(
        default="info", description="The least severe log records written (debug adds every SQL statement)."
    )

    @field_validator("trusted_proxies", "cors_write_origins", mode="before")
    @classmethod
    def _comma_separated(cls, value: Any) -> Any:
        return (
            [part.strip() for part in value.split(",") if part.strip()] if isinstance(value, str) else value
        )

    @field_validator("read_database_urls", mode="before")
    @classmethod
    def _url_list(cls, value: Any) -> Any:
        return (
            [part.strip() for part in value.split(",")]
            if isinstance(value, str) and value.strip()
            else ([] if isinstance(value, str) else value)
        )

    @field_validator("read_database_urls")
    @classmethod
    def _replica_urls(cls, value: list[str]) -> list[str]:
        for index, url in enumerate(value, 1):
            scheme, sep, rest = url.partition("://")
            if not url:
                raise ValueError(f"replica URL {index} is empty: separate URLs by single commas")
            if not sep or scheme not in ("postgres", "postgresql", "postgresql+psycopg") or not rest:
                raise ValueError(
                    f"replica URL {index} is not a PostgreSQL URL (postgresql://user:password@host:port/db); "
                    f"it starts {url.split('@')[-1][:40]!r}"
                )
        if len(set(value)) != len(value):
            raise ValueError("a replica URL is listed twice")
        return value

    @field_validator("cors_write_origins")
    @classmethod
    def _origins(cls, value: list[str]) -> list[str]:
        # browsers send Origin as scheme://host[:port], lower case, no path: compare in that form
        origins = [origin.rstrip("/").lower() for origin in value]
        for origin in origins:
            scheme, _, rest = origin.partition("://")
            if scheme not in ("http", "https") or not rest or "/" in rest or "*" in rest:
                raise ValueError(f"a write origin is scheme://host[:port] (no path, no *); got {origin!r}")
        return origins


@lru_cache
def get_settings() -> Settings:
    """The settings of this process, read from the environment once."""
    return Settings()
