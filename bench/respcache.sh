#!/usr/bin/env bash
# Response cache benchmark (docs/response-cache.md): in one run, on this
# machine, with a private PostgreSQL and Redis, the simulator as the provider
# and nginx as the peer.
#  1. hit ratio on a trace with repeats: N deterministic requests drawn with
#     a skew from P distinct questions (half of them streamed), one at a time;
#     the ideal ratio is (N - distinct questions seen) / N;
#  2. latency, one request at a time (wrk -c1): a cache hit, the same request
#     with the cache off (a provider round trip to the simulator, which answers
#     at once), and nginx serving a static file of the hit's size. Prints the
#     p50/p99 of each and the ratios.
#
#   bench/respcache.sh [--requests N] [--prompts P] [--duration S]
set -euo pipefail
cd "$(dirname "$0")/.."
. bench/lib.sh
requests=600; prompts=120; dur=5
while [ $# -gt 0 ]; do
    case "$1" in
        --requests) requests=$2; shift 2 ;;
        --prompts) prompts=$2; shift 2 ;;
        --duration) dur=$2; shift 2 ;;
        -h|--help) sed -n '2,15p' "$0" | sed 's/^# \{0,1\}//'; exit 0 ;;
        *) echo "unknown argument $1" >&2; exit 2 ;;
    esac
done
bench_need wrk node curl nginx

bench_start rcbench
chmod 755 "$work" # nginx (www-data) serves a file from it
ctl=build/gateway/ctl/tollgatectl
$ctl migrate >/dev/null
$ctl price seed >/dev/null
$ctl team create bench >/dev/null
key=$($ctl key create --team bench --response-cache on 2>/dev/null)

build/sim/tollgate-sim --listen 127.0.0.1:0 --port-file "$work/sim.port" --completion-tokens 32 \
    --cache off >/dev/null 2>"$work/sim.log" &
pids+=($!)
for _ in $(seq 1 100); do [ -s "$work/sim.port" ] && break; sleep 0.05; done
sim_port=$(cat "$work/sim.port")
# a provider with a real provider's pace: first token after 200 ms, 60 tokens/s
build/sim/tollgate-sim --listen 127.0.0.1:0 --port-file "$work/slow.port" --completion-tokens 32 \
    --cache off --ttft-ms 200 --tokens-per-s 60 >/dev/null 2>"$work/slow.log" &
pids+=($!)
for _ in $(seq 1 100); do [ -s "$work/slow.port" ] && break; sleep 0.05; done
slow_port=$(cat "$work/slow.port")

cat > "$work/tollgate.conf" <<CONF
[gateway]
listen = 127.0.0.1:0
admin_listen = 127.0.0.1:0
workers = 2
postgres = $TG_PG_CONNINFO
admin_token = none
log_level = warn
redis = $TG_REDIS_URL
response_cache = on
[provider deepseek]
kind = deepseek
base_url = http://127.0.0.1:$sim_port/v1
api_key = none
[provider paced]
kind = deepseek
base_url = http://127.0.0.1:$slow_port/v1
api_key = none
[model deepseek-chat]
provider = deepseek upstream=deepseek-chat context=65536
[model paced]
provider = paced upstream=deepseek-chat context=65536
CONF
build/gateway/tollgate --config "$work/tollgate.conf" --port-file "$work/tg.ports" \
    >/dev/null 2>"$work/tg.log" &
pids+=($!)
for _ in $(seq 1 200); do [ -s "$work/tg.ports" ] && break; sleep 0.05; done
[ -s "$work/tg.ports" ] || { echo "bench: tollgate did not start: $(cat "$work/tg.log")" >&2; exit 1; }
tg_port=$(sed -n 1p "$work/tg.ports"); admin_port=$(sed -n 2p "$work/tg.ports")
url="http://127.0.0.1:$tg_port/v1/chat/completions"

echo "== 1. hit ratio on a trace: $requests requests over $prompts questions (skewed), half streamed"
URL=$url KEY=$key N=$requests P=$prompts node - <<'JS'
const { URL: url, KEY: key } = process.env;
const N = Number(process.env.N), P = Number(process.env.P);
let s = 12345; // a fixed LCG: the same trace every run
const rnd = () => ((s = (s * 1103515245 + 12345) % 2147483648) / 2147483648);
const seen = new Set();
let hits = 0, miss = 0, other = 0, failed = 0;
const t0 = Date.now();
for (let i = 0; i < N; i++) {
  const q = Math.floor(P * Math.pow(rnd(), 2)); // skewed: low numbers are asked more often
  seen.add(q);
  const body = { model: 'deepseek-chat', temperature: 0, max_tokens: 32, stream: rnd() < 0.5,
    messages: [{ role: 'system', content: 'You answer questions about the quarterly report.' },
      { role: 'user', content: `Question ${q}: what changed in region ${q % 7}?` }] };
  const r = await fetch(url, { method: 'POST', headers: { 'Content-Type': 'application/json', Authorization: `Bearer ${key}` }, body: JSON.stringify(body) });
  await r.text();
  if (r.status !== 200) failed++;
  const c = r.headers.get('x-tollgate-cache');
  if (c === 'hit') hits++; else if (c === 'miss') miss++; else other++;
}
const ideal = (N - seen.size) / N;
console.log(`requests ${N}, distinct questions ${seen.size}, hits ${hits}, misses ${miss}, other ${other}, failed ${failed}`);
console.log(`hit ratio ${(hits / N).toFixed(3)} (ideal for this trace ${ideal.toFixed(3)}; ratio to ideal ${(hits / N / ideal).toFixed(3)}) in ${((Date.now() - t0) / 1000).toFixed(1)} s`);
JS

body='{"model":"deepseek-chat","temperature":0,"max_tokens":32,"messages":[{"role":"user","content":"A question asked again and again."}]}'
curl -s -o "$work/hit.json" -H "Authorization: Bearer $key" -H 'Content-Type: application/json' -d "$body" "$url"
sleep 0.3
state=$(curl -s -o "$work/hit.json" -D - -H "Authorization: Bearer $key" -H 'Content-Type: application/json' \
    -d "$body" "$url" | tr -d '\r' | awk -F': ' 'tolower($1)=="x-tollgate-cache"{print $2}')
[ "$state" = hit ] || { echo "bench: the warm request was not a hit ($state)" >&2; exit 1; }
size=$(stat -c %s "$work/hit.json")

mkdir -p "$work/www"
cp "$work/hit.json" "$work/www/hit.json"
nginx_port=$(python3 -c 'import socket;s=socket.socket();s.bind(("127.0.0.1",0));print(s.getsockname()[1])')
cat > "$work/nginx.conf" <<CONF
worker_processes 1;
user root;
pid $work/nginx.pid;
error_log $work/nginx-error.log warn;
events { worker_connections 1024; }
http {
    access_log off;
    server {
        listen 127.0.0.1:$nginx_port;
        location / { root $work/www; }
    }
}
CONF
/usr/sbin/nginx -c "$work/nginx.conf" -p "$work"
for _ in $(seq 1 100); do [ -s "$work/nginx.pid" ] && break; sleep 0.05; done

cat > "$work/post.lua" <<LUA
wrk.method = os.getenv("METHOD")
wrk.headers["Content-Type"] = "application/json"
wrk.headers["Authorization"] = "Bearer $key"
if os.getenv("CACHE") ~= "" then wrk.headers["x-tollgate-cache"] = os.getenv("CACHE") end
if os.getenv("METHOD") == "POST" then wrk.body = os.getenv("BODY") end
LUA
# wrk_lat URL METHOD CACHE -> "p50_ms p99_ms requests errors" (one connection, one request at a time)
to_ms() { awk '{v=$1; if (v ~ /us$/) {sub(/us$/,"",v); v/=1000} else if (v ~ /ms$/) {sub(/ms$/,"",v)} else if (v ~ /s$/) {sub(/s$/,"",v); v*=1000}; printf "%.3f", v}'; }
wrk_lat() {
    local out; out=$(METHOD=$2 CACHE=$3 BODY="${4:-$body}" wrk -t1 -c1 -d"${dur}s" --latency -s "$work/post.lua" "$1")
    local p50 p99 n errs
    p50=$(echo "$out" | awk '$1=="50%"{print $2}' | to_ms)
    p99=$(echo "$out" | awk '$1=="99%"{print $2}' | to_ms)
    n=$(echo "$out" | awk '/requests in/{print $1}')
    errs=$(echo "$out" | awk '/Non-2xx|Socket errors/{print}' | tr '\n' ' ')
    echo "$p50 $p99 $n ${errs:-none}"
}
echo
echo "== 2. latency, one connection, one request at a time (wrk -c1, ${dur}s each; the answer is $size bytes)"
read -r h50 h99 hn herr < <(wrk_lat "$url" POST "")
read -r p50 p99 pn perr < <(wrk_lat "$url" POST off)
read -r n50 n99 nn nerr < <(wrk_lat "http://127.0.0.1:$nginx_port/hit.json" GET "")
pbody=${body/deepseek-chat/paced}
read -r s50 s99 sn serr < <(wrk_lat "$url" POST off "$pbody")
printf "%-48s %8s %8s %8s %s\n" "" "p50 ms" "p99 ms" "requests" "errors"
printf "%-48s %8.3f %8.3f %8s %s\n" "tollgate, response cache hit" "$h50" "$h99" "$hn" "$herr"
printf "%-48s %8.3f %8.3f %8s %s\n" "tollgate, cache off: provider round trip (sim)" "$p50" "$p99" "$pn" "$perr"
printf "%-48s %8.3f %8.3f %8s %s\n" "nginx, static file of the same size" "$n50" "$n99" "$nn" "$nerr"
printf "%-48s %8.3f %8.3f %8s %s\n" "tollgate, cache off: paced provider (200 ms, 60/s)" "$s50" "$s99" "$sn" "$serr"
awk -v h="$h50" -v p="$p50" -v n="$n50" -v s="$s50" 'BEGIN{printf "ratio p50: hit/instant provider %.2f, hit/nginx %.2f, hit/paced provider %.5f (%.0fx faster)\n", h/p, h/n, h/s, s/h}'
m=$(curl -s "http://127.0.0.1:$admin_port/metrics")
echo "$m" | grep -E '^tollgate_response_cache_events_total' | tr '\n' ' '; echo
echo "$m" | awk '/^tollgate_response_cache_lookup_seconds_(sum|count)/{v[$1]=$2} END{if (v["tollgate_response_cache_lookup_seconds_count"]>0) printf "mean Redis lookup %.3f ms over %d lookups\n", 1000*v["tollgate_response_cache_lookup_seconds_sum"]/v["tollgate_response_cache_lookup_seconds_count"], v["tollgate_response_cache_lookup_seconds_count"]}'
