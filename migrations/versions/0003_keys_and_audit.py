"""Keys may expire and be limited to layers; the audit log of writes and refused authentications.

`api_keys.expires_at` (NULL: never) and `api_keys.layers` (NULL: every editable layer) are read with the key
on each authenticated request. `audit_log` gets one row per write request (in the write's own transaction,
so a write that rolls back leaves no "success" row) and per refused authentication; its rows are never
changed (a trigger refuses UPDATE), and old ones may be deleted to keep it small.

Revision ID: 0003
Revises: 0002
Create Date: 2026-12-02
"""

from alembic import op

revision = "0003"
down_revision = "0002"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.execute(
        """
        ALTER TABLE api_keys
            ADD COLUMN expires_at timestamptz,
            ADD COLUMN layers text[] CHECK (layers IS NULL OR cardinality(layers) > 0);

        CREATE TABLE audit_log (
            id bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
            at timestamptz NOT NULL DEFAULT now(),
            action text NOT NULL,
            outcome text NOT NULL,
            status integer NOT NULL,
            key_name text,
            collection text,
            feature_ids bigint[],
            client text,
            request_id text,
            detail text,
            CONSTRAINT audit_log_outcome_check CHECK (outcome IN ('success', 'refused', 'error'))
        );
        CREATE INDEX audit_log_at_idx ON audit_log (at);

        CREATE FUNCTION jx_audit_is_unchanged() RETURNS trigger LANGUAGE plpgsql AS $$
        BEGIN
            RAISE EXCEPTION 'audit_log entries cannot be changed';
        END $$;
        CREATE TRIGGER audit_log_unchanged BEFORE UPDATE ON audit_log
            FOR EACH STATEMENT EXECUTE FUNCTION jx_audit_is_unchanged();
        """
    )


def downgrade() -> None:
    op.execute(
        """
        DROP TABLE IF EXISTS audit_log;
        DROP FUNCTION IF EXISTS jx_audit_is_unchanged();
        ALTER TABLE api_keys DROP COLUMN IF EXISTS layers, DROP COLUMN IF EXISTS expires_at;
        """
    )
