"""The service's SQLAlchemy engine (writes, and the reads that go through it: collections, history)."""

from __future__ import annotations

import asyncio

from sqlalchemy import text

from geo_service.db.engine import READ_SETTINGS, async_engine
from geo_service.settings import Settings


def test_the_engine_has_the_read_pools_session_settings(database_url: str, settings: Settings) -> None:
    """No JIT and no parallel workers on the engine's sessions either: with a 100,000-row layer loaded,
    PostgreSQL spent about 0.3 s JIT-compiling the 1 ms statement of every `/collections` request (the
    PostGIS functions' cost estimates set it off), and that was most of its work in the soak."""

    async def shown() -> dict[str, str]:
        engine = async_engine(database_url, settings)
        try:
            async with engine.connect() as conn:
                return {
                    name: str((await conn.execute(text(f"SHOW {name}"))).scalar_one())
                    for name in ("jit", "max_parallel_workers_per_gather")
                }
        finally:
            await engine.dispose()

    assert asyncio.run(shown()) == {s.split(" = ")[0]: s.split(" = ")[1] for s in READ_SETTINGS}
