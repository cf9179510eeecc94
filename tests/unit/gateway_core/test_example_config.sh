#!/usr/bin/env bash
# The documented example etc/tollgate.conf must stay valid: it passes
# `tollgate --check-config` once its secrets and tokenizer paths point at
# things that exist on this machine; a broken line is reported with its line.
set -euo pipefail
tollgate=$1; src=$2
tmp=$(mktemp -d); trap 'rm -rf "$tmp"' EXIT
echo "sk-backup" > "$tmp/backup.key"
sed -e "s#/usr/share/tollgate/tokenizers/deepseek-v3#$src/data/tokenizers/deepseek-v3#" \
    -e "s#file:/etc/tollgate/secrets/backup.key#file:$tmp/backup.key#" \
    -e "s#/var/lib/tollgate/spool#$tmp/spool#" \
    "$src/etc/tollgate.conf" > "$tmp/ok.conf"
DEEPSEEK_API_KEY=sk-x TG_ADMIN_TOKEN=t TG_PG_CONNINFO=dbname=x TG_REDIS_URL=redis://127.0.0.1:1 "$tollgate" --check-config --config "$tmp/ok.conf"
# a typo is reported with file and line, exit 1
sed 's/^workers = 2 /workers = two /' "$tmp/ok.conf" > "$tmp/bad.conf"
if out=$(DEEPSEEK_API_KEY=sk-x TG_ADMIN_TOKEN=t TG_PG_CONNINFO=dbname=x TG_REDIS_URL=redis://127.0.0.1:1 "$tollgate" --check-config --config "$tmp/bad.conf" 2>&1); then
    echo "a bad config passed: $out"; exit 1
fi
line=$(grep -n '^workers = two' "$tmp/bad.conf" | cut -d: -f1)
echo "$out" | grep -q "bad.conf:$line: workers must be an integer" || { echo "unexpected: $out"; exit 1; }
# a missing secret names the variable
if out=$(env -u DEEPSEEK_API_KEY TG_ADMIN_TOKEN=t TG_PG_CONNINFO=dbname=x TG_REDIS_URL=redis://127.0.0.1:1 "$tollgate" --check-config --config "$tmp/ok.conf" 2>&1); then exit 1; fi
echo "$out" | grep -q "DEEPSEEK_API_KEY is not set" || { echo "unexpected: $out"; exit 1; }
echo "example config OK"
