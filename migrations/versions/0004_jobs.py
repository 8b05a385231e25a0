"""Jobs of OGC API – Processes: one row per asynchronous execution, kept until it expires.

A job is `accepted` when created, `running` while a service process holds its lease (`lease_until`, renewed
while it runs), then `successful` (with `results`) or `failed` (with `error`, a problem document), or
`dismissed` by its client. A process that dies leaves a running job whose lease runs out: another process (or
the same one, restarted) takes it again, at most `max_attempts` times in all. Finished jobs are deleted after
`expires_at`.

Revision ID: 0004
Revises: 0003
Create Date: 2026-12-04
"""

from alembic import op

revision = "0004"
down_revision = "0003"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.execute(
        """
        CREATE TABLE jobs (
            id uuid PRIMARY KEY,
            process_id text NOT NULL,
            client text NOT NULL,
            status text NOT NULL DEFAULT 'accepted',
            message text,
            progress integer NOT NULL DEFAULT 0 CHECK (progress BETWEEN 0 AND 100),
            inputs jsonb NOT NULL,
            base_url text NOT NULL,
            results jsonb,
            error jsonb,
            attempts integer NOT NULL DEFAULT 0,
            lease_until timestamptz,
            created_at timestamptz NOT NULL DEFAULT now(),
            started_at timestamptz,
            finished_at timestamptz,
            updated_at timestamptz NOT NULL DEFAULT now(),
            expires_at timestamptz NOT NULL,
            CONSTRAINT jobs_status_check
                CHECK (status IN ('accepted', 'running', 'successful', 'failed', 'dismissed'))
        );
        CREATE INDEX jobs_queue_idx ON jobs (created_at) WHERE status IN ('accepted', 'running');
        CREATE INDEX jobs_client_idx ON jobs (client, status);
        CREATE INDEX jobs_expiry_idx ON jobs (expires_at);
        """
    )


def downgrade() -> None:
    op.execute("DROP TABLE jobs")
