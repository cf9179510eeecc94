#!/usr/bin/env bash
# The "tokens" command: count, encode, decode (file and standard input),
# --help, and its errors (usage, unknown tokenizer, bad ids, missing file).
# Usage: test_tok_cli.sh TOLLGATE_TOKENS TOKENIZER_DIR CORPUS_DIR
set -uo pipefail
bin=$1 dir=$2 corpus=$3
fails=0
fail() { echo "FAIL: $*" >&2; fails=$((fails + 1)); }
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT

printf 'Hello world! 12345 你好世界 カタカナ' > "$tmp/in.txt"
# Ids produced by HF tokenizers for this text (see tests/node/tokenizer-expected.js).
want="19923 2058 3 223 6895 1883 223 30594 3427 223 15961 11767 15961 27071"
got=$("$bin" encode --tokenizer "$dir/tokenizer.json" "$tmp/in.txt" | tr '\n' ' ' | sed 's/ $//')
[ "$got" = "$want" ] || fail "encode: got '$got'"
got=$("$bin" count --tokenizer "$dir" < "$tmp/in.txt")
[ "$got" = 14 ] || fail "count from stdin: got '$got'"
got=$(echo "$want" | "$bin" decode --tokenizer "$dir")
[ "$got" = "$(cat "$tmp/in.txt")" ] || fail "decode: got '$got'"
# A name is looked up under $TG_TOKENIZER_DIR.
mkdir -p "$tmp/tk/ds" && cp "$dir/tokenizer.json" "$tmp/tk/ds/"
got=$(TG_TOKENIZER_DIR="$tmp/tk" "$bin" count --tokenizer ds "$tmp/in.txt")
[ "$got" = 14 ] || fail "count by name: got '$got'"
# Round trip of a whole corpus file through the command line.
"$bin" encode --tokenizer "$dir" "$corpus/mixed.txt" > "$tmp/ids"
"$bin" decode --tokenizer "$dir" "$tmp/ids" > "$tmp/back"
cmp -s "$tmp/back" "$corpus/mixed.txt" || fail "encode | decode round trip of mixed.txt"
n=$("$bin" count --tokenizer "$dir" "$corpus/mixed.txt")
[ "$n" = "$(wc -l < "$tmp/ids")" ] || fail "count $n disagrees with encode"

# --chat: a request body is rendered with the chat template, then counted.
echo '{"model":"deepseek-chat","messages":[{"role":"system","content":"Be brief."},{"role":"user","content":"Hi"}]}' > "$tmp/req.json"
got=$("$bin" decode --chat --tokenizer "$dir" "$tmp/req.json")
[ "$got" = "<｜begin▁of▁sentence｜>Be brief.<｜User｜>Hi<｜Assistant｜>" ] || fail "--chat render: got '$got'"
printf '%s' "$got" > "$tmp/prompt.txt"
want_n=$("$bin" count --tokenizer "$dir" "$tmp/prompt.txt")
got=$("$bin" count --chat --tokenizer "$dir" < "$tmp/req.json")
[ "$got" = "$want_n" ] && [ "$got" -gt 3 ] || fail "--chat count: got '$got', want '$want_n'"
echo '[{"role":"user","content":"Hi"}]' | "$bin" encode --chat --tokenizer "$dir" | head -1 | grep -qx 0 || fail "--chat encode starts with BOS id 0"
echo '[{"role":"user"}]' | "$bin" count --chat --tokenizer "$dir" 2>"$tmp/err"; rc=$?
[ $rc = 1 ] && grep -q "messages\[0\].content: missing" "$tmp/err" || fail "--chat bad message: rc $rc, $(cat "$tmp/err")"
echo 'not json' | "$bin" count --chat --tokenizer "$dir" 2>"$tmp/err"; rc=$?
[ $rc = 1 ] && grep -q "not valid JSON" "$tmp/err" || fail "--chat bad JSON: rc $rc"

"$bin" --help | grep -q "usage: tokens count|encode|decode" || fail "--help"
"$bin" frobnicate --tokenizer "$dir" </dev/null 2>/dev/null; [ $? = 2 ] || fail "bad command not exit 2"
"$bin" count </dev/null 2>/dev/null; [ $? = 2 ] || fail "missing --tokenizer not exit 2"
"$bin" count --tokenizer no-such-tokenizer </dev/null 2>"$tmp/err"; rc=$?
[ $rc = 1 ] && grep -q "no tokenizer named 'no-such-tokenizer'" "$tmp/err" || fail "unknown name: rc $rc, $(cat "$tmp/err")"
"$bin" count --tokenizer "$dir" "$tmp/missing.txt" 2>"$tmp/err"; rc=$?
[ $rc = 1 ] && grep -q "missing.txt" "$tmp/err" || fail "missing input file: rc $rc"
echo "1 2 999999999" | "$bin" decode --tokenizer "$dir" 2>"$tmp/err" >/dev/null; rc=$?
[ $rc = 1 ] && grep -q "999999999.*not in the vocabulary" "$tmp/err" || fail "bad id: rc $rc, $(cat "$tmp/err")"
echo "1 x 2" | "$bin" decode --tokenizer "$dir" 2>"$tmp/err" >/dev/null; rc=$?
[ $rc = 1 ] && grep -q "not a token id" "$tmp/err" || fail "non-numeric id: rc $rc"
echo '{"model": 1}' > "$tmp/bad.json"
"$bin" count --tokenizer "$tmp/bad.json" </dev/null 2>"$tmp/err"; rc=$?
[ $rc = 1 ] && grep -q "bad.json: model: missing or not an object" "$tmp/err" || fail "bad tokenizer: rc $rc, $(cat "$tmp/err")"

echo "cli checks: $fails failures"
[ $fails = 0 ]
