#!/usr/bin/env bash
# Tokenizer benchmark: single-thread encode throughput of the Tollgate C
# tokenizer against HF tokenizers (npm @anush008/tokenizers, measured in the
# same run on the same corpus), the ratio, a check that both produced the same
# ids (checksum), and the per-request cost of a 2,000-token chat prompt
# (template + count + 64-token block hashes).
#   bench/tokenizer.sh [SECONDS]      (default 3 s per side)
set -euo pipefail
cd "$(dirname "$0")/.."
secs=${1:-3}
data=data/tokenizers/deepseek-v3
corpus=tests/unit/tokenizer/corpus
[ -f "$data/tokenizer.json" ] || { echo "bench: $data/tokenizer.json missing: run scripts/setup" >&2; exit 1; }
[ -d tests/node/node_modules/@anush008/tokenizers ] || { echo "bench: node packages missing: run scripts/setup" >&2; exit 1; }
[ -d build ] || meson setup build >/dev/null
ninja -C build tokenizer/libtg_tok.a common/libtg_common.a >/dev/null
cc -O2 -Wall -Wextra -Itokenizer -I/usr/include/cjson bench/tokenizer_bench.c \
    build/tokenizer/libtg_tok.a build/common/libtg_common.a -lcjson -lpthread -o build/tokenizer_bench
ours=$(mktemp) hf=$(mktemp)
trap 'rm -f "$ours" "$hf"' EXIT
echo "cpu: $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | sed 's/^ //'), load average $(cut -d' ' -f1 /proc/loadavg)"
taskset -c 0 build/tokenizer_bench "$data" "$corpus" "$secs" > "$ours" 2>/dev/null ||
    build/tokenizer_bench "$data" "$corpus" "$secs" > "$ours"
# One libuv worker: HF encodes one string at a time on one thread.
UV_THREADPOOL_SIZE=1 node bench/tokenizer_hf.js "$data/tokenizer.json" "$corpus" "$secs" > "$hf"

field() { grep "^$1" "$2" | head -1 | tr ' ' '\n' | grep "^$3=" | cut -d= -f2; }
printf '\n%-28s %12s %12s %9s %9s %7s\n' "corpus file" "tg tok/s" "hf tok/s" "tg MB/s" "hf MB/s" "ratio"
grep '^file ' "$ours" | while read -r _ name rest; do
    line_hf=$(grep "^file $name " "$hf")
    t1=$(echo "$rest" | tr ' ' '\n' | grep '^tokens_per_s=' | cut -d= -f2)
    m1=$(echo "$rest" | tr ' ' '\n' | grep '^mb_per_s=' | cut -d= -f2)
    t2=$(echo "$line_hf" | tr ' ' '\n' | grep '^tokens_per_s=' | cut -d= -f2)
    m2=$(echo "$line_hf" | tr ' ' '\n' | grep '^mb_per_s=' | cut -d= -f2)
    printf '%-28s %12s %12s %9s %9s %6.1fx\n' "$name" "$t1" "$t2" "$m1" "$m2" "$(echo "$t1 / $t2" | bc -l)"
done
t1=$(field tollgate "$ours" tokens_per_s); t2=$(field hf "$hf" tokens_per_s)
m1=$(field tollgate "$ours" mb_per_s); m2=$(field hf "$hf" mb_per_s)
c1=$(field tollgate "$ours" checksum); c2=$(field hf "$hf" checksum)
n1=$(field tollgate "$ours" tokens); n2=$(field hf "$hf" tokens)
ratio=$(echo "$t1 / $t2" | bc -l)
printf '%-28s %12s %12s %9s %9s %6.1fx\n' "WHOLE CORPUS ($(field tollgate "$ours" bytes) B)" "$t1" "$t2" "$m1" "$m2" "$ratio"
echo
echo "tokens: tollgate $n1, hf $n2; id checksum: tollgate $c1, hf $c2"
echo "load tokenizer.json: tollgate $(field tollgate "$ours" load_s) s, hf $(field hf "$hf" load_s) s"
grep '^chat_prompt' "$ours" | sed 's/^chat_prompt/chat prompt (template + encode + block hashes):/'
status=0
if [ "$c1" != "$c2" ] || [ "$n1" != "$n2" ]; then echo "IDS DIFFER"; status=1; else echo "ids identical"; fi
printf 'speed-up: %.1fx (target >= 5x)\n' "$ratio"
exit $status
