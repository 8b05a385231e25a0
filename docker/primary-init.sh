#!/bin/sh
# Run once by the PostGIS image's entrypoint, when the primary's data directory is created: the role the
# replica streams with, its slot (the primary keeps the WAL the replica has not received yet), and the pg_hba
# line that lets it connect for replication (the image's own lines do not cover replication connections).
set -eu
psql -v ON_ERROR_STOP=1 --username "$POSTGRES_USER" --dbname "$POSTGRES_DB" \
  --set=password="$REPLICATION_PASSWORD" <<'SQL'
CREATE ROLE replicator WITH REPLICATION LOGIN PASSWORD :'password';
SELECT pg_create_physical_replication_slot('replica_1');
SQL
echo "host replication replicator all scram-sha-256" >> "$PGDATA/pg_hba.conf"
