#!/usr/bin/env bash
# Benchmark: price one usage record against thousands of cards and windows with
# the indexed pr_price_usage versus a naive linear scan, in the same run.
# Builds bench/pricing_bench.c with the pricing sources at -O2 (no meson needed).
#   bench/pricing.sh [providers models cards runs]     defaults: 10 50 10 7
# Prints median ns/record for both and the ratio (see docs/pricing.md).
set -euo pipefail
cd "$(dirname "$0")/.."
out=$(mktemp -d)
trap 'rm -rf "$out"' EXIT
cc -std=c17 -O2 -D_GNU_SOURCE -Wall -Wextra -Werror -Ipricing \
    bench/pricing_bench.c pricing/pr_*.c -o "$out/pricing_bench"
echo "machine: $(nproc) cpus, $(uname -m), $(cc --version | head -1)"
"$out/pricing_bench" "$@"
