#!/usr/bin/env bash
# Routing simulation benchmark (issue 7): one synthetic trace replayed through
# the same tollgate binary under four routing policies -- Tollgate's
# cost/latency router (cheapest expected cost that meets each request's needs)
# against round-robin, always-cheapest-list-price and always-fastest -- in
# front of three simulators set up like different hosts of one model, with a
# discount window over part of the trace and an outage in the middle.
#
#   bench/router.sh [--requests N] [--interval-ms MS] [--policies a,b,...]
#
# Reports per policy: total charge (sum of the usage rows' exact charges),
# share of latency targets met, client errors, requests per provider; and the
# ratio of each baseline's charge to Tollgate's. Not a test: numbers.
set -euo pipefail
cd "$(dirname "$0")/.."
. bench/lib.sh
root=$(pwd)
args=()
while [ $# -gt 0 ]; do
    case "$1" in
        --requests|--interval-ms|--policies) args+=("$1" "$2"); shift 2 ;;
        -h|--help) sed -n '2,13p' "$0" | sed 's/^# \{0,1\}//'; exit 0 ;;
        *) echo "unknown argument $1" >&2; exit 2 ;;
    esac
done
bench_need
[ -d data/tokenizers/deepseek-v3 ] || { echo "bench: tokenizer missing: run scripts/setup" >&2; exit 1; }
bench_start router-bench
export TOLLGATE_BIN="$root/build/gateway/tollgate" TOLLGATECTL_BIN="$root/build/gateway/ctl/tollgatectl" \
    SIM_BIN="$root/build/sim/tollgate-sim" TG_SOURCE_ROOT="$root" NODE_PATH="$root/tests/node/node_modules"
node bench/router_bench.mjs "${args[@]}"
