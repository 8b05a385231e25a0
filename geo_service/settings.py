"""The one settings object: every knob is an environment variable with a safe default."""

from functools import lru_cache
from pathlib import Path

from pydantic import Field
from pydantic_settings import BaseSettings, SettingsConfigDict

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


@lru_cache
def get_settings() -> Settings:
    """The settings of this process, read from the environment once."""
    return Settings()
