#!/usr/bin/env bash
# `--device` on the command line: a bad name is a usage error (exit 2) for
# generate, serve and bench; without a GPU (or a build without CUDA)
# `--device cuda` exits 1 with one line naming the cause (CUDA's own message,
# or how to build with CUDA) before any model is loaded; with a GPU the
# greedy tokens of `generate --device cuda --gpu-f32` equal the CPU's.
#   test_cuda_cli.sh ENGINE FIXTURE_DIR
set -uo pipefail
eng=$1 fx=$2 fail=0
ids=$(seq -s, 3 7 283)
no() { echo "FAIL: $*" >&2; fail=1; }
for cmd in generate serve bench; do
    out=$("$eng" $cmd --device tpu --model "$fx/v2_tiny" 2>&1); rc=$?
    [ $rc = 2 ] && grep -q "device" <<<"$out" || no "$cmd --device tpu: exit $rc: $out"
done
cpu=$("$eng" generate --model "$fx/v3_tiny_yarn" --ids "$ids" --greedy --max-tokens 8 --ignore-eos) ||
    no "CPU generate failed"
gpu=$("$eng" generate --device cuda --gpu-f32 --model "$fx/v3_tiny_yarn" --ids "$ids" --greedy \
      --max-tokens 8 --ignore-eos 2>"${TMPDIR:-/tmp}/cuda_cli.$$"); rc=$?
msg=$(cat "${TMPDIR:-/tmp}/cuda_cli.$$"); rm -f "${TMPDIR:-/tmp}/cuda_cli.$$"
if [ $rc = 0 ]; then
    echo "GPU present: generate --device cuda gave $gpu, CPU $cpu"
    [ "$gpu" = "$cpu" ] || no "GPU tokens $gpu differ from CPU tokens $cpu"
else
    echo "no GPU here: $msg"
    [ $rc = 1 ] || no "--device cuda without a GPU: exit $rc, expected 1"
    grep -qE "^tollgate-engine generate: --device cuda: (no usable CUDA device|no CUDA device|this tollgate-engine was built without CUDA)" <<<"$msg" ||
        no "--device cuda without a GPU: unclear message: $msg"
    [ "$(wc -l <<<"$msg")" = 1 ] || no "expected one line, got: $msg"
    for cmd in "serve --tokenizer /nonexistent" bench; do
        out=$("$eng" $cmd --device cuda --random-init "$fx/v2_tiny/config.json" 2>&1); rc=$?
        [ $rc = 1 ] && grep -q -- "--device cuda: " <<<"$out" || no "$cmd --device cuda without a GPU: exit $rc: $out"
    done
fi
[ $fail = 0 ] && echo ok
exit $fail
