"""Features keep their geometry in Web Mercator too, indexed, for vector tiles.

`geom_3857` is a stored generated column (`ST_Transform(geom, 3857)`, an IMMUTABLE function in PostGIS), so
every write of `geom` — editing, the loader, imports, history's revert — keeps it in step with no change to
the writers. Tiles select through its GiST index with the tile's own envelope and hand the stored geometry
to `ST_AsMVTGeom`, so no feature is transformed while a tile is served.

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-24
"""

from alembic import op

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.execute(
        """
        ALTER TABLE features ADD COLUMN geom_3857 geometry(Geometry, 3857)
            GENERATED ALWAYS AS (ST_Transform(geom, 3857)) STORED;
        CREATE INDEX features_geom_3857_idx ON features USING gist (geom_3857);
        """
    )


def downgrade() -> None:
    op.execute(
        """
        DROP INDEX IF EXISTS features_geom_3857_idx;
        ALTER TABLE features DROP COLUMN IF EXISTS geom_3857;
        """
    )
