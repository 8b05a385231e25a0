"""Alembic environment: the URL comes from `geo_service.db.migrate` (never from a file)."""

from alembic import context
from sqlalchemy import create_engine, pool

from geo_service.db.tables import metadata

config = context.config
url = config.attributes.get("url") or context.get_x_argument(as_dictionary=True).get("url")
if not url:
    raise SystemExit("Run migrations with `jxplan db upgrade` (it knows the database URL).")

engine = create_engine(url, poolclass=pool.NullPool)
with engine.connect() as connection:
    context.configure(connection=connection, target_metadata=metadata, transaction_per_migration=True)
    with context.begin_transaction():
        context.run_migrations()
engine.dispose()
