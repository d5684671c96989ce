#!/usr/bin/env bash
# Start a throwaway PostgreSQL on 127.0.0.1 for the tests (Debian's postgresql package).
# Usage: eval "$(bash scripts/postgres.sh start)"  ... bash scripts/postgres.sh stop DATADIR
set -euo pipefail
PORT="${SWARM_MCP_TEST_PG_PORT:-54329}"
case "${1:-start}" in
  start)
    if ! ls /usr/lib/postgresql/*/bin/initdb >/dev/null 2>&1; then
      if [ "$(id -u)" != 0 ]; then echo "echo 'postgresql is not installed: PostgreSQL tests will be skipped' >&2"; exit 0; fi
      (apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq postgresql) >&2
    fi
    PGBIN=$(ls -d /usr/lib/postgresql/*/bin | sort -V | tail -1)
    if (exec 3<>"/dev/tcp/127.0.0.1/$PORT") 2>/dev/null; then  # taken (a PostgreSQL left running, another service): a free one
      PORT=$(python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
    fi
    DATA=$(mktemp -d /tmp/swarm-mcp-pg.XXXXXX)
    RUN_AS=()
    if [ "$(id -u)" = 0 ]; then chown postgres "$DATA"; RUN_AS=(su postgres -s /bin/bash -c); else RUN_AS=(bash -c); fi
    "${RUN_AS[@]}" "$PGBIN/initdb -D $DATA -A trust -U swarm >/dev/null" >&2
    "${RUN_AS[@]}" "$PGBIN/pg_ctl -D $DATA -o '-h 127.0.0.1 -p $PORT -k $DATA' -l $DATA/server.log -w start >/dev/null" >&2
    echo "export SWARM_MCP_TEST_POSTGRES_URL=postgresql+asyncpg://swarm@127.0.0.1:$PORT/postgres SWARM_MCP_TEST_PG_DATA=$DATA"
    ;;
  stop)
    DATA="$2"
    PGBIN=$(ls -d /usr/lib/postgresql/*/bin | sort -V | tail -1)
    if [ "$(id -u)" = 0 ]; then su postgres -s /bin/bash -c "$PGBIN/pg_ctl -D $DATA -m immediate stop" >&2 || true
    else "$PGBIN/pg_ctl" -D "$DATA" -m immediate stop >&2 || true; fi
    rm -rf "$DATA"
    ;;
esac
