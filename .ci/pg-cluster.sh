#!/usr/bin/env bash
# A throwaway PostgreSQL cluster for the tests that need one.
#
#   eval "$(bash .ci/pg-cluster.sh start)"   # prints exports: SMSBRIDGE_TEST_PG_DSN, SMSBRIDGE_TEST_PG_DIR
#   bash .ci/pg-cluster.sh stop "$SMSBRIDGE_TEST_PG_DIR"
#
# Installs Debian's postgresql if no server binaries are found. The cluster
# lives in a temporary directory owned by the postgres user (PostgreSQL
# refuses to run as root), listens on 127.0.0.1 on a free port, and asks for
# a password (scram-sha-256), so the tests see a DSN with a secret in it.
set -euo pipefail

bindir() {
  ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -V | tail -n 1
}

as_pg() {
  if [ "$(id -u)" = 0 ]; then runuser -u postgres -- "$@"; else "$@"; fi
}

start() {
  local bin
  bin=$(bindir)
  if [ -z "$bin" ] || [ ! -x "$bin/initdb" ]; then
    echo "pg-cluster: installing postgresql" >&2
    DEBIAN_FRONTEND=noninteractive apt-get install -y postgresql >&2 ||
      { apt-get update >&2 && DEBIAN_FRONTEND=noninteractive apt-get install -y postgresql >&2; }
    bin=$(bindir)
  fi
  local dir port pw
  dir=$(mktemp -d /tmp/smsbridge-pg.XXXXXX)
  chmod 755 "$dir"
  pw="pgtest-$(head -c 12 /dev/urandom | od -An -tx1 | tr -d ' \n')"
  printf '%s\n' "$pw" >"$dir/pwfile"
  if [ "$(id -u)" = 0 ]; then chown -R postgres:postgres "$dir"; fi
  as_pg "$bin/initdb" -D "$dir/data" -U postgres --auth=scram-sha-256 --pwfile="$dir/pwfile" -E UTF8 >"$dir/initdb.log" 2>&1 ||
    { cat "$dir/initdb.log" >&2; exit 1; }
  # Ports below Linux's ephemeral range (32768 and up), which the tests'
  # own loopback connections use: a port free a moment ago can be taken
  # by one of them by the time the server binds, so a failed start tries
  # another port.
  local started=""
  for _ in $(seq 1 8); do
    for _ in $(seq 1 50); do
      port=$(( (RANDOM % 12000) + 20000 ))
      if ! (exec 3<>"/dev/tcp/127.0.0.1/$port") 2>/dev/null; then break; fi
    done
    # In the config file rather than on pg_ctl's command line, so a test
    # can stop and start the server again (a database restart) with
    # pg_ctl alone.
    cp "$dir/postgresql.conf.orig" "$dir/data/postgresql.conf" 2>/dev/null ||
      cp "$dir/data/postgresql.conf" "$dir/postgresql.conf.orig"
    cat >>"$dir/data/postgresql.conf" <<CONF
listen_addresses = '127.0.0.1'
port = $port
unix_socket_directories = '$dir'
max_connections = 400
CONF
    if as_pg "$bin/pg_ctl" -D "$dir/data" -l "$dir/server.log" -w -t 60 start >&2; then
      started=1
      break
    fi
    echo "pg-cluster: the server did not start on port $port; trying another" >&2
    tail -n 5 "$dir/server.log" >&2 || true
  done
  [ -n "$started" ] || { cat "$dir/server.log" >&2; exit 1; }
  echo "export SMSBRIDGE_TEST_PG_DIR='$dir'"
  echo "export SMSBRIDGE_TEST_PG_BIN='$bin'"
  echo "export SMSBRIDGE_TEST_PG_DSN='postgres://postgres:$pw@127.0.0.1:$port/postgres?sslmode=disable'"
}

stop() {
  local dir=${1:-}
  [ -n "$dir" ] && [ -d "$dir" ] || return 0
  local bin
  bin=$(bindir)
  as_pg "$bin/pg_ctl" -D "$dir/data" -m immediate -w stop >/dev/null 2>&1 || true
  rm -rf "$dir"
}

case "${1:-}" in
  start) start ;;
  stop) stop "${2:-}" ;;
  *) echo "usage: $0 start | stop DIR" >&2; exit 2 ;;
esac
