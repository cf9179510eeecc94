#!/usr/bin/env bash
# Benchmark: usage-ledger throughput into PostgreSQL (events/s, target at
# least 50,000) against a plain COPY of the same rows into the same table,
# in one run, on a private PostgreSQL (scripts/services) migrated to the
# current schema (monthly partitions and their indexes included).
#   bench/ledger.sh [ROWS] [ROWS_FOR_SYNC_ALWAYS]        defaults: 200000 10000
# Needs the normal build (meson setup build && ninja -C build).
# Prints events/s for COPY, the writer with the spool (sync interval, then
# always) and without it, each with its ratio to COPY (see docs/ledger.md).
set -euo pipefail
cd "$(dirname "$0")/.."
rows=${1:-200000}; rows_always=${2:-10000}
[ -f build/gateway/pg/libgw_pg.a ] || { echo "bench: build first (ninja -C build)" >&2; exit 1; }
work=$(mktemp -d /tmp/tollgate-ledger-bench.XXXXXX)
finish() { scripts/services stop "$work/services" >/dev/null 2>&1 || true; rm -rf "$work"; }
trap finish EXIT
cc -std=c17 -O2 -D_GNU_SOURCE -Wall -Wextra -Werror -Igateway/pg -Icommon -Ipricing \
    -I/usr/include/postgresql bench/ledger_bench.c build/gateway/pg/libgw_pg.a \
    build/pricing/libtg_pricing.a build/common/libtg_common.a -lpq -lcjson -lcrypto -lpthread -lm \
    -o "$work/ledger_bench"
scripts/services start "$work/services" >/dev/null
set -a; . "$work/services/services.env"; set +a
build/gateway/ctl/tollgatectl migrate >/dev/null
build/gateway/ctl/tollgatectl price seed >/dev/null # rows are priced, as the gateway's are
mkdir -p "$work/spool"
echo "machine: $(nproc) cpus, $(uname -m); PostgreSQL $(psql "$TG_PG_CONNINFO" -Atc 'show server_version');" \
     "spool on $(df -P "$work" | awk 'NR==2 {print $1}')"
TG_LOG_LEVEL=warn "$work/ledger_bench" "$rows" "$work/spool" "$rows_always" 2> "$work/bench.log" || {
    cat "$work/bench.log" >&2; exit 1; }
