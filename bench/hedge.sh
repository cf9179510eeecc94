#!/usr/bin/env bash
# Hedging benchmark (issue 7, docs/router.md "Hedging"): what a hedge buys in
# tail latency and what it costs in money. Two simulators are two hosts of one
# model: "cheap" (TTFT 150 ms, but a seeded 10% of answers 3000 ms) and
# "dear" (2x the price, TTFT 100 ms, no tail). The model routes by cost with a
# 1000 ms latency target, so cheap goes first. One trace is replayed through
# the same tollgate binary twice in one run: hedging off (hedge_after_ms = 0,
# the peer) and on (hedge_after_ms = 400).
#
#   bench/hedge.sh [--requests N] [--interval-ms MS] [--hedge-after-ms MS]
#                   [--route-percentile P]
#
# Reports per mode: latency targets met, p50/p90/p99 latency (time to the
# first event of a stream, the whole answer otherwise; client-measured), the
# team's total charge and the gateway's own cost (exact sums in PostgreSQL),
# hedges sent/won/lost, client errors; and the on/off ratios of p99 and of the
# total spend (team + gateway). Not a test: numbers.
set -euo pipefail
cd "$(dirname "$0")/.."
. bench/lib.sh
root=$(pwd)
args=()
while [ $# -gt 0 ]; do
    case "$1" in
        --requests|--interval-ms|--hedge-after-ms|--route-percentile) args+=("$1" "$2"); shift 2 ;;
        -h|--help) sed -n '2,17p' "$0" | sed 's/^# \{0,1\}//'; exit 0 ;;
        *) echo "unknown argument $1" >&2; exit 2 ;;
    esac
done
bench_need
[ -d data/tokenizers/deepseek-v3 ] || { echo "bench: tokenizer missing: run scripts/setup" >&2; exit 1; }
bench_start hedge-bench
export TOLLGATE_BIN="$root/build/gateway/tollgate" TOLLGATECTL_BIN="$root/build/gateway/ctl/tollgatectl" \
    SIM_BIN="$root/build/sim/tollgate-sim" TG_SOURCE_ROOT="$root" NODE_PATH="$root/tests/node/node_modules"
node bench/hedge_bench.mjs "${args[@]}"
