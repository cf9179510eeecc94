#!/usr/bin/env bash
# The GPU check's serving-parity step (bench/serve-parity.sh) without a GPU:
# `serve --device cpu` against `serve --device cuda` of tollgate-engine-mock
# (the CUDA backend's host code on the mock runtime) must give the same HTTP
# answers; and the comparison must be able to fail: two different random
# models (seeds 7 and 8) on cpu,cpu must FAIL on the demo requests while the
# golden fixture's requests, the same model on both sides, still agree.
# MOCK_PARTS: the models the mock serves (default demo,golden; the sanitizer
# build passes golden: the mock's loops over demo-tiny's vocabulary are slow).
#   test_serve_parity.sh PARITY_SCRIPT ENGINE MOCK_ENGINE SOURCE_ROOT FIXTURES [MOCK_PARTS]
set -uo pipefail
parity=$1 eng=$2 mock=$3 root=$4 fx=$5 mock_parts=${6:-demo,golden}
tok="$root/data/tokenizers/deepseek-v3"
[ -f "$tok/tokenizer.json" ] || { echo "FAIL: no tokenizer in $tok (scripts/setup puts it there)"; exit 1; }
tmp=$(mktemp -d "${TMPDIR:-/tmp}/serve_parity.XXXXXX")
trap 'rm -rf "$tmp"' EXIT
common=(--tokenizer "$tok" --config "$root/engine/configs/demo-tiny.json" --fixture "$fx/v3_tiny_yarn")
fail=0
val() { sed -n "s/^serve_parity_$1=//p" "$2" | tail -1; }

"$parity" --engine "$mock" "${common[@]}" --devices cpu,cuda --parts "$mock_parts" --out "$tmp/mock" \
    > "$tmp/mock.log" 2>&1
rc=$?
if [ $rc != 0 ] || [ "$(val result "$tmp/mock.log")" != PASS ]; then
    echo "FAIL: cpu vs mock cuda: exit $rc"; tail -30 "$tmp/mock.log"; fail=1
else
    echo "cpu vs mock cuda ($mock_parts): $(val same "$tmp/mock.log")/$(val requests "$tmp/mock.log") identical;" \
         "cached tokens $(val hit_tokens "$tmp/mock.log"); batch max $(val batch_max "$tmp/mock.log")"
fi

"$parity" --engine "$eng" "${common[@]}" --devices cpu,cpu --seeds 7,8 --out "$tmp/neg" > "$tmp/neg.log" 2>&1
rc=$?
same=$(val same "$tmp/neg.log") n=$(val requests "$tmp/neg.log")
if [ $rc = 1 ] && [ "$(val result "$tmp/neg.log")" = FAIL ] && [ -n "$same" ] && [ -n "$n" ] &&
   [ "$same" -gt 0 ] && [ "$same" -lt "$n" ] && ! sed -n '/^== golden/,$p' "$tmp/neg.log" | grep -q '^DIFF' &&
   grep -q '^serve-parity: .* problems' "$tmp/neg.log"; then
    echo "seeds 7 vs 8: FAIL as it must ($same/$n identical: the golden part only)"
else
    echo "FAIL: seeds 7 vs 8 should fail the demo part only: exit $rc, $same/$n identical"
    tail -30 "$tmp/neg.log"; fail=1
fi
[ $fail = 0 ] && echo ok
exit $fail
