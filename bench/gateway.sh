#!/usr/bin/env bash
# Gateway benchmark: the simulator direct, nginx as a plain reverse proxy in
# front of it, and tollgate in front of it (authentication and usage rows on),
# measured in one run on this machine. Not a test: numbers, not verdicts.
#
#   bench/gateway.sh [--duration S] [--connections N] [--soak S]
#
# Reports, per target: requests/s at saturation (wrk), p50/p99 latency added
# over direct at half of tollgate's maximum load (hey, fixed rate), CPU seconds
# per 1000 requests and peak RSS of the proxy; the same for streamed responses
# (64 events each) with the time to first byte added (curl) and the relay cost
# per event. --soak S also samples tollgate's RSS every 10 s under load for S s.
set -euo pipefail
cd "$(dirname "$0")/.."
. bench/lib.sh
root=$(pwd)
duration=10; conns=32; soak=0
while [ $# -gt 0 ]; do
    case "$1" in
        --duration) duration=$2; shift 2 ;;
        --connections) conns=$2; shift 2 ;;
        --soak) soak=$2; shift 2 ;;
        -h|--help) sed -n '2,14p' "$0" | sed 's/^# \{0,1\}//'; exit 0 ;;
        *) echo "unknown argument $1" >&2; exit 2 ;;
    esac
done
bench_need wrk hey nginx curl

bench_start bench
build/gateway/ctl/tollgatectl migrate >/dev/null
build/gateway/ctl/tollgatectl team create bench >/dev/null
key=$(build/gateway/ctl/tollgatectl key create --team bench 2>/dev/null)

start_sim() { # $1 = name, rest = args; the port lands in $work/$name.port
    local name=$1; shift
    build/sim/tollgate-sim --listen 127.0.0.1:0 --name "$name" --port-file "$work/$name.port" "$@" \
        >/dev/null 2>"$work/$name.log" &
    pids+=($!)
    for _ in $(seq 1 100); do [ -s "$work/$name.port" ] && break; sleep 0.05; done
}
start_sim sim --completion-tokens 16 --cache off
start_sim simstream --completion-tokens 64 --cache off
sim_port=$(cat "$work/sim.port"); stream_port=$(cat "$work/simstream.port")

free_port() { python3 -c 'import socket;s=socket.socket();s.bind(("127.0.0.1",0));print(s.getsockname()[1])' 2>/dev/null \
    || echo $((20000 + RANDOM % 30000)); }
nginx_port=$(free_port)
cat > "$work/nginx.conf" <<CONF
worker_processes 2;
pid $work/nginx.pid;
error_log $work/nginx-error.log warn;
events { worker_connections 4096; }
http {
    access_log off;
    upstream sim { server 127.0.0.1:$sim_port; keepalive 64; }
    upstream simstream { server 127.0.0.1:$stream_port; keepalive 64; }
    server {
        listen 127.0.0.1:$nginx_port;
        location /stream/ { proxy_pass http://simstream/; proxy_http_version 1.1;
                            proxy_set_header Connection ""; proxy_buffering off; }
        location / { proxy_pass http://sim; proxy_http_version 1.1; proxy_set_header Connection ""; }
    }
}
CONF
/usr/sbin/nginx -c "$work/nginx.conf" -p "$work"

cat > "$work/tollgate.conf" <<CONF
[gateway]
listen = 127.0.0.1:0
admin_listen = 127.0.0.1:0
workers = 2
postgres = env:TG_PG_CONNINFO
admin_token = none
log_level = warn
# the durable usage journal, as in production (etc/tollgate.conf): at
# saturation PostgreSQL may fall behind, and the backlog waits on disk
spool_dir = $work/spool
[provider sim]
base_url = http://127.0.0.1:$sim_port/v1
api_key = none
[provider simstream]
base_url = http://127.0.0.1:$stream_port/v1
api_key = none
[model chat]
provider = sim
[model streamchat]
provider = simstream
CONF
build/gateway/tollgate --config "$work/tollgate.conf" --port-file "$work/ports" 2>"$work/tollgate.log" &
tg_pid=$!; pids+=($tg_pid)
for _ in $(seq 1 200); do [ -s "$work/ports" ] && break; sleep 0.05; done
[ -s "$work/ports" ] || { echo "bench: tollgate did not start:" >&2; cat "$work/tollgate.log" >&2; exit 1; }
tg_port=$(head -n1 "$work/ports")
nginx_pids=$(pgrep -P "$(cat "$work/nginx.pid")" | tr '\n' ' ')

body='{"model":"chat","messages":[{"role":"user","content":"Write one sentence about benchmarks."}]}'
sbody='{"model":"streamchat","stream":true,"messages":[{"role":"user","content":"Stream please."}]}'
cat > "$work/post.lua" <<LUA
wrk.method = "POST"
wrk.headers["Content-Type"] = "application/json"
wrk.headers["Authorization"] = "Bearer $key"
wrk.body = os.getenv("BODY")
LUA

cpu_ticks() { local t=0; for p in "$@"; do t=$((t + $(awk '{print $14+$15}' /proc/$p/stat))); done; echo $t; }
peak_rss_kb() { local m=0; for p in "$@"; do v=$(awk '/VmHWM/{print $2}' /proc/$p/status); [ "$v" -gt "$m" ] && m=$v; done; echo $m; }
hz=$(getconf CLK_TCK)

# run_wrk URL BODY PIDS... -> "rps p50_ms p99_ms cpu_ms_per_1000"
run_wrk() {
    local url=$1 b=$2; shift 2
    local c0; c0=$(cpu_ticks "$@" 2>/dev/null || echo 0)
    local out; out=$(BODY="$b" wrk -t1 -c"$conns" -d"${duration}s" --latency -s "$work/post.lua" "$url")
    local c1; c1=$(cpu_ticks "$@" 2>/dev/null || echo 0)
    local rps; rps=$(echo "$out" | awk '/Requests\/sec/{print $2}')
    local total; total=$(echo "$out" | awk '/requests in/{print $1}')
    local errs; errs=$(echo "$out" | awk '/Non-2xx|Socket errors/{print}' | tr '\n' ' ')
    local cpu_per_k=0
    [ $# -gt 0 ] && cpu_per_k=$(awk -v c=$((c1 - c0)) -v hz="$hz" -v n="$total" 'BEGIN{printf "%.1f", c*1000/hz/n*1000}')
    echo "$rps $cpu_per_k ${errs:-none}"
}
# run_hey URL BODY RATE -> "p50_ms p99_ms errors"
run_hey() {
    local url=$1 b=$2 rate=$3 c=8
    local q; q=$(awk -v r="$rate" -v c=$c 'BEGIN{q=int(r/c); if(q<1)q=1; print q}')
    local out; out=$(hey -z "${duration}s" -c $c -q "$q" -m POST -T application/json \
        -H "Authorization: Bearer $key" -d "$b" "$url")
    local p50 p99; p50=$(echo "$out" | awk '/50%% in|50% in/{print $3*1000}')
    p99=$(echo "$out" | awk '/99%% in|99% in/{print $3*1000}')
    local errs; errs=$(echo "$out" | awk '/Status code distribution/{f=1;next} /Error distribution/{e=1} f&&/\[[0-9]+\]/&&!/\[200\]/{n+=$2} e&&/\[[0-9]+\]/{n+=$1} END{print n+0}')
    echo "$p50 $p99 $errs"
}

echo "== non-streamed: saturation (wrk, ${duration}s, $conns connections)"
read -r d_rps _ d_err < <(run_wrk "http://127.0.0.1:$sim_port/v1/chat/completions" "$body")
read -r n_rps n_cpu n_err < <(run_wrk "http://127.0.0.1:$nginx_port/v1/chat/completions" "$body" $nginx_pids)
read -r t_rps t_cpu t_err < <(run_wrk "http://127.0.0.1:$tg_port/v1/chat/completions" "$body" $tg_pid)
half=$(awk -v r="$t_rps" 'BEGIN{print int(r/2)}')
echo "== non-streamed: latency at $half req/s (half of tollgate's maximum; hey)"
read -r d50 d99 derr < <(run_hey "http://127.0.0.1:$sim_port/v1/chat/completions" "$body" "$half")
read -r n50 n99 nerr < <(run_hey "http://127.0.0.1:$nginx_port/v1/chat/completions" "$body" "$half")
read -r t50 t99 terr < <(run_hey "http://127.0.0.1:$tg_port/v1/chat/completions" "$body" "$half")

echo "== streamed (64 events per response)"
read -r sd_rps _ _ < <(run_wrk "http://127.0.0.1:$stream_port/v1/chat/completions" "$sbody")
read -r sn_rps sn_cpu _ < <(run_wrk "http://127.0.0.1:$nginx_port/stream/v1/chat/completions" "$sbody" $nginx_pids)
read -r st_rps st_cpu st_err < <(run_wrk "http://127.0.0.1:$tg_port/v1/chat/completions" "$sbody" $tg_pid)
ttfb() { # URL -> median time to first byte in ms over 200 sequential requests
    for _ in $(seq 1 200); do
        curl -s -o /dev/null -w '%{time_starttransfer}\n' -H 'Content-Type: application/json' \
            -H "Authorization: Bearer $key" -d "$sbody" "$1"
    done | sort -n | awk '{a[NR]=$1} END{printf "%.3f", a[int(NR/2)]*1000}'
}
sd_ttfb=$(ttfb "http://127.0.0.1:$stream_port/v1/chat/completions")
sn_ttfb=$(ttfb "http://127.0.0.1:$nginx_port/stream/v1/chat/completions")
st_ttfb=$(ttfb "http://127.0.0.1:$tg_port/v1/chat/completions")
per_event_us=$(awk -v c="$st_cpu" 'BEGIN{printf "%.2f", c/64}')

rows=$(psql "$TG_PG_CONNINFO" -Atc 'select count(*) from usage_events')
ratio=$(awk -v t="$t_rps" -v n="$n_rps" 'BEGIN{printf "%.2f", t/n}')
sratio=$(awk -v t="$st_rps" -v n="$sn_rps" 'BEGIN{printf "%.2f", t/n}')
add() { awk -v a="$1" -v b="$2" 'BEGIN{printf "%.2f", a-b}'; }
cat <<TABLE

| non-streamed | req/s (saturation) | vs nginx | p50 added (ms) | p99 added (ms) | CPU ms / 1000 req | peak RSS (MiB) | errors |
|---|---|---|---|---|---|---|---|
| simulator direct | $d_rps | | 0 | 0 | | | $d_err / $derr |
| nginx | $n_rps | 1.00 | $(add "$n50" "$d50") | $(add "$n99" "$d99") | $n_cpu | $(( $(peak_rss_kb $nginx_pids) / 1024 )) | $n_err / $nerr |
| tollgate | $t_rps | $ratio | $(add "$t50" "$d50") | $(add "$t99" "$d99") | $t_cpu | $(( $(peak_rss_kb $tg_pid) / 1024 )) | $t_err / $terr |

| streamed (64 events) | req/s (saturation) | vs nginx | TTFB median (ms) | TTFB added (ms) | CPU ms / 1000 req |
|---|---|---|---|---|---|
| simulator direct | $sd_rps | | $sd_ttfb | 0 | |
| nginx | $sn_rps | 1.00 | $sn_ttfb | $(add "$sn_ttfb" "$sd_ttfb") | $sn_cpu |
| tollgate | $st_rps | $sratio | $st_ttfb | $(add "$st_ttfb" "$sd_ttfb") | $st_cpu |

tollgate relay cost per streamed event: ${per_event_us} µs CPU (whole request CPU / 64).
Latency run at $half req/s; usage rows written during the run: $rows.
TABLE

if [ "$soak" -gt 0 ]; then
    # Memory over a long run at a steady, sustainable load (half of the
    # maximum, like the latency run): RSS and the usage backlog every 10 s.
    admin=$(sed -n 2p "$work/ports")
    echo "== soak: ${soak}s at $half req/s; every 10 s: tollgate RSS (KiB) / usage rows pending"
    q=$(awk -v r="$half" 'BEGIN{q=int(r/8); if(q<1)q=1; print q}')
    hey -z "${soak}s" -c 8 -q "$q" -m POST -T application/json -H "Authorization: Bearer $key" \
        -d "$body" "http://127.0.0.1:$tg_port/v1/chat/completions" > "$work/soak.out" &
    hpid=$!
    while kill -0 $hpid 2>/dev/null; do
        rss=$(awk '/VmRSS/{print $2}' /proc/$tg_pid/status)
        pend=$(curl -s "127.0.0.1:$admin/metrics" | awk '/^tollgate_usage_rows_pending/{print $2}')
        printf '%s/%s ' "$rss" "$pend"; sleep 10
    done
    echo
    grep -E "Requests/sec|99% in|\[[0-9]+\]" "$work/soak.out" | sed 's/^/    /'
fi
