#!/usr/bin/env bash
# Exhaustive Unicode check (about a minute): every code point, in letter,
# digit, space and punctuation contexts, encoded by this tokenizer and by HF
# tokenizers. Lists the code points whose ids differ and fails if any of them
# is assigned in the UnicodeData.txt the tables were built from (a difference
# only on code points that file leaves unassigned means HF's Oniguruma knows a
# newer Unicode version: rebuild on a machine with newer unicode-data).
#   bench/tokenizer_unicode.sh
set -euo pipefail
cd "$(dirname "$0")/.."
data=data/tokenizers/deepseek-v3
ucd=/usr/share/unicode/UnicodeData.txt
[ -d build ] || meson setup build >/dev/null
ninja -C build tokenizer/libtg_tok.a common/libtg_common.a >/dev/null
cc -O2 -Wall -Wextra -Itokenizer -I/usr/include/cjson bench/tokenizer_unicode.c \
    build/tokenizer/libtg_tok.a build/common/libtg_common.a -lcjson -lpthread -o build/tokenizer_unicode
hashes=$(mktemp)
trap 'rm -f "$hashes"' EXIT
node bench/tokenizer_unicode.js "$data/tokenizer.json" > "$hashes"
build/tokenizer_unicode "$data/tokenizer.json" "$hashes" "$ucd"
