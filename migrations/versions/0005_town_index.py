"""An index of the features that are towns, which every site check names (geo_service.analysis).

Without it the site check's list of located towns reads the whole features table (a million benchmark parcels
cost 300 ms a check); with it, the few town rows.

Revision ID: 0005
Revises: 0004
Create Date: 2026-12-04
"""

from alembic import op

revision = "0005"
down_revision = "0004"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.execute("CREATE INDEX features_town_idx ON features (layer_id, id) WHERE category = 'town'")


def downgrade() -> None:
    op.execute("DROP INDEX features_town_idx")
