#!/bin/sh
# The replica's start: on the first one, copy the primary with pg_basebackup -R (which writes
# standby.signal and primary_conninfo, so PostgreSQL starts as a streaming hot standby on the slot the
# primary made for it); then run PostgreSQL.
set -eu
if [ ! -s "$PGDATA/PG_VERSION" ]; then
  export PGPASSWORD="$REPLICATION_PASSWORD"
  until pg_basebackup --host=db --username=replicator --pgdata="$PGDATA" --write-recovery-conf \
        --wal-method=stream --slot=replica_1 --checkpoint=fast; do
    echo "waiting for the primary" >&2
    rm -rf "$PGDATA"
    sleep 2
  done
  unset PGPASSWORD
  chmod 700 "$PGDATA"
fi
exec postgres
