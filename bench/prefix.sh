#!/usr/bin/env bash
# Prefix-index benchmark (issue 9): one synthetic trace with shared prefixes
# (long system prompts, multi-turn chats, one-off questions on shared
# documents) replayed through the same tollgate binary in front of three
# simulators that tokenize like DeepSeek and keep DeepSeek-style prompt
# caches, at equal prices: with the prefix index on, and with it off (the
# same `cheapest` router, and the `ordered` default as a second baseline),
# all modes at the same time so that the machine's load weighs on each alike.
#
#   bench/prefix.sh [--conversations N] [--turns N] [--concurrency N] [--modes a,b,...]
#
# First the lookup on its own (bench/prefix_lookup_bench.c: client round trip
# and Redis CPU per call against PING), then, per mode: total INPUT cost
# (cache-hit + cache-miss parts of the usage rows' exact charges), hit tokens
# / prompt tokens, requests per provider, the client's end-to-end latency
# (p50/p99), the lookup's own latency from the gateway's histogram and its
# outcomes, and the ratio to the index-off run.
# Not a test: numbers.
set -euo pipefail
cd "$(dirname "$0")/.."
. bench/lib.sh
root=$(pwd)
args=()
while [ $# -gt 0 ]; do
    case "$1" in
        --conversations|--turns|--concurrency|--modes) args+=("$1" "$2"); shift 2 ;;
        -h|--help) sed -n '2,19p' "$0" | sed 's/^# \{0,1\}//'; exit 0 ;;
        *) echo "unknown argument $1" >&2; exit 2 ;;
    esac
done
bench_need
[ -d data/tokenizers/deepseek-v3 ] || { echo "bench: tokenizer missing: run scripts/setup" >&2; exit 1; }
bench_start prefix-bench
export TOLLGATE_BIN="$root/build/gateway/tollgate" TOLLGATECTL_BIN="$root/build/gateway/ctl/tollgatectl" \
    SIM_BIN="$root/build/sim/tollgate-sim" TG_SOURCE_ROOT="$root" NODE_PATH="$root/tests/node/node_modules"
cc -std=c17 -O2 -D_GNU_SOURCE -Wall -Wextra -Werror -Igateway -I/usr/include/hiredis \
    bench/prefix_lookup_bench.c build/gateway/libgw_prefix.a build/tokenizer/libtg_tok.a \
    build/common/libtg_common.a -lhiredis -lcjson -lm -o "$work/prefix_lookup_bench"
echo "machine: $(nproc) cpus, load average $(cut -d' ' -f1-3 /proc/loadavg), $(redis-server --version | cut -d' ' -f3)"
echo
echo "== the lookup itself (client on the same machine, blocking hiredis) =="
redis_port=${TG_REDIS_URL##*:}
"$work/prefix_lookup_bench" 127.0.0.1 "$redis_port" 5000 40
echo
echo "== the trace through the gateway =="
node bench/prefix_bench.mjs "${args[@]}"
