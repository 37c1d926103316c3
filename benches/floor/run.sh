#!/usr/bin/env bash
# The floor under the lifecycle benchmark: Postgres alone doing only the
# writes a create+delete lifecycle cannot do without (BENCHMARKS.md, "The
# floor"), driven by pgbench on the product's own schema. No HTTP, no
# LaunchDarkly, no claims, reads or notifications: what is left is the four
# durable statements (the PUT's generation + job + audit row, the create's
# outcome, the DELETE, the delete's outcome), each a commit.
#
#   bash benches/floor/run.sh            # 15 s per script, 8 and 16 clients
#   SECONDS_PER_RUN=30 bash benches/floor/run.sh
#
# Needs psql and pgbench (Debian: postgresql-client) and a superuser URL in
# TEST_DATABASE_URL (default postgres://postgres@127.0.0.1:5432/postgres).
# A database of its own is created, migrated with `ld-eaas migrate` and
# dropped at the end.
#
# The two scripts repeat each other's statements on purpose: the batched
# form (`= any(array)`, `generate_series`) costs about a quarter more than
# the single-row one when it writes one lifecycle, so one script with a
# batch size of 1 would understate the floor.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
root=$(cd "$here/../.." && pwd)
admin=${TEST_DATABASE_URL:-postgres://postgres@127.0.0.1:5432/postgres}
name="ldeaas_floor_$$"
# The database's name replaces the URL's path; a query (`?host=/var/run/postgresql`
# for the Unix socket, `?sslmode=disable`) is kept.
query=""
case "$admin" in *\?*) query="?${admin#*\?}" ;; esac
base="${admin%%\?*}"
url="${base%/*}/$name$query"
seconds=${SECONDS_PER_RUN:-15}

psql -q "$admin" -c "create database $name"
trap 'psql -q "$admin" -c "drop database if exists $name with (force)"' EXIT
(cd "$root" && cargo run --quiet --release --locked -- migrate --database-url "$url")
psql -q "$url" -c "insert into tenants (id, display_name, created_at, updated_at)
                   select 'f-' || i, 'floor', now(), now() from generate_series(1, 10) i"

for script in one_by_one ten_per_statement; do
  per=1
  [ "$script" = ten_per_statement ] && per=10
  for clients in 8 16; do
    psql -q "$url" -c "vacuum analyze environments, jobs, audit_events"
    tps=$(pgbench -n -M prepared -c "$clients" -j 2 -T "$seconds" -f "$here/$script.sql" "$url" 2>/dev/null |
      sed -n 's/^tps = \([0-9.]*\).*/\1/p')
    [ -n "$tps" ] || { echo "pgbench failed ($script, $clients clients)" >&2; exit 1; }
    awk -v s="$script" -v c="$clients" -v t="$tps" -v p="$per" \
      'BEGIN { printf "%-18s %2d clients: %8.0f lifecycles/s\n", s, c, t * p }'
  done
done
