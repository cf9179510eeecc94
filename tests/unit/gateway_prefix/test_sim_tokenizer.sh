#!/usr/bin/env bash
# tollgate-sim --tokenizer counts like DeepSeek (= tollgatectl tokens count
# --chat) and its cache hits fall on those 64-token blocks; --report-cache off
# drops every cache field from the usage; a bad tokenizer path exits 2.
set -euo pipefail
sim=$1; ctl=$2; tok=$3
tmp=$(mktemp -d); pid=
trap '[ -n "$pid" ] && kill "$pid" 2>/dev/null; rm -rf "$tmp"' EXIT
n=0
start() { # starts the simulator with "$@", sets pid and port
    n=$((n + 1)) # a fresh file per start: the child truncates only once it runs
    "$sim" --listen 127.0.0.1:0 "$@" > "$tmp/out$n" 2> "$tmp/err" &
    pid=$!
    for _ in $(seq 1 600); do grep -q listening "$tmp/out$n" 2>/dev/null && break; sleep 0.05; done
    port=$(sed -n 's/.*://p' "$tmp/out$n" | head -1)
    [ -n "$port" ] || { echo "simulator did not start: $(cat "$tmp/err")"; exit 1; }
}
stop() { kill "$pid"; wait "$pid" || true; pid=; }
words=$(for i in $(seq 1 300); do printf 'word%d ' "$i"; done)
printf '{"model":"deepseek-chat","messages":[{"role":"system","content":"%s"},{"role":"user","content":"hello there"}]}' \
    "$words" > "$tmp/body.json"
want=$("$ctl" tokens count --chat --tokenizer "$tok" "$tmp/body.json")
field() { grep -o "\"$1\":[0-9]*" | head -1 | cut -d: -f2; }

start --tokenizer "$tok"
u1=$(curl -sf "127.0.0.1:$port/v1/chat/completions" -d @"$tmp/body.json")
u2=$(curl -sf "127.0.0.1:$port/v1/chat/completions" -d @"$tmp/body.json")
stop
[ "$(echo "$u1" | field prompt_tokens)" = "$want" ] || { echo "prompt_tokens $(echo "$u1" | field prompt_tokens), want $want"; exit 1; }
[ "$(echo "$u1" | field prompt_cache_hit_tokens)" = 0 ] || { echo "first request hit: $u1"; exit 1; }
hit=$(echo "$u2" | field prompt_cache_hit_tokens)
[ "$hit" = $(( want / 64 * 64 )) ] || { echo "second request hit $hit, want $(( want / 64 * 64 ))"; exit 1; }

# without --tokenizer: the 4-byte rule (a different count)
start
u3=$(curl -sf "127.0.0.1:$port/v1/chat/completions" -d @"$tmp/body.json")
stop
[ "$(echo "$u3" | field prompt_tokens)" != "$want" ] || { echo "default mode counted like the tokenizer"; exit 1; }

# --report-cache off: no cache field at all, counts still there
start --report-cache off --tokenizer "$tok"
u4=$(curl -sf "127.0.0.1:$port/v1/chat/completions" -d @"$tmp/body.json")
stop
echo "$u4" | grep -q '"prompt_tokens":' || { echo "no usage: $u4"; exit 1; }
if echo "$u4" | grep -Eq 'cache|cached_tokens|prompt_tokens_details'; then echo "cache fields reported: $u4"; exit 1; fi

# bad values exit 2 with the reason
if "$sim" --tokenizer "$tmp/none" > /dev/null 2> "$tmp/e"; then echo "a missing tokenizer started"; exit 1; fi
grep -q "no such file" "$tmp/e" || { echo "unexpected: $(cat "$tmp/e")"; exit 1; }
if "$sim" --report-cache maybe > /dev/null 2> "$tmp/e"; then echo "--report-cache maybe accepted"; exit 1; fi
grep -q "bad value for --report-cache" "$tmp/e" || { echo "unexpected: $(cat "$tmp/e")"; exit 1; }
echo "sim --tokenizer OK ($want tokens, hit $hit)"
