#!/usr/bin/env bash
# Governance benchmark: the cost of rate limits and budget holds on the
# request path. Two tollgate instances in one run against the same simulator,
# PostgreSQL and Redis, identical but for `governance = on|off`; the team has a
# budget and limits high enough never to refuse, so every request is governed
# (one EVALSHA before forwarding, one fire-and-forget EVALSHA at settle).
#
#   bench/governance.sh [--duration S] [--connections N] [--rounds R] [--compare BIN]
#
# Prints requests/s at saturation and p50/p99 latency (wrk) for each, taking
# turns R times (off, on, off, on, ...) and reporting the medians, the ratio
# on/off, Redis EVALSHA calls and CPU per governed request (INFO) and the
# gateways' CPU per request (/proc). --compare BIN adds a third gateway, the
# tollgate binary BIN (e.g. a build of an earlier commit) with governance on,
# measured in the same rotation: before/after numbers from one run. nginx, as a
# plain reverse proxy to the same simulator, is the peer that shows what this
# machine allows a proxy without any governance.
set -euo pipefail
cd "$(dirname "$0")/.."
. bench/lib.sh
duration=8; conns=32; rounds=3; compare=
while [ $# -gt 0 ]; do
    case "$1" in
        --compare) compare=$2; shift 2 ;;
        --duration) duration=$2; shift 2 ;;
        --connections) conns=$2; shift 2 ;;
        --rounds) rounds=$2; shift 2 ;;
        -h|--help) sed -n '2,16p' "$0" | sed 's/^# \{0,1\}//'; exit 0 ;;
        *) echo "unknown argument $1" >&2; exit 2 ;;
    esac
done
bench_need wrk nginx

bench_start govbench
ctl=build/gateway/ctl/tollgatectl
$ctl migrate >/dev/null
$ctl price seed >/dev/null
$ctl team create bench >/dev/null
key=$($ctl key create --team bench 2>/dev/null)
$ctl budget set --team bench --hard 1000000 --period month >/dev/null
$ctl limit set --team bench --rpm 100000000 --tpm 100000000000 --concurrent 100000 >/dev/null

build/sim/tollgate-sim --listen 127.0.0.1:0 --port-file "$work/sim.port" --completion-tokens 16 \
    --cache off >/dev/null 2>"$work/sim.log" &
pids+=($!)
for _ in $(seq 1 100); do [ -s "$work/sim.port" ] && break; sleep 0.05; done
sim_port=$(cat "$work/sim.port")

start_gw() { # $1 = name, $2 = on|off, $3 = binary (default: this build)
    cat > "$work/$1.conf" <<CONF
[gateway]
listen = 127.0.0.1:0
admin_listen = off
workers = 2
postgres = $TG_PG_CONNINFO
admin_token = none
log_level = warn
redis = $TG_REDIS_URL
governance = $2
[provider deepseek]
kind = deepseek
base_url = http://127.0.0.1:$sim_port/v1
api_key = none
[model deepseek-chat]
provider = deepseek upstream=deepseek-chat context=65536
CONF
    "${3:-build/gateway/tollgate}" --config "$work/$1.conf" --port-file "$work/$1.ports" \
        >/dev/null 2>"$work/$1.log" &
    pids+=($!)
    for _ in $(seq 1 200); do [ -s "$work/$1.ports" ] && break; sleep 0.05; done
    [ -s "$work/$1.ports" ] || { echo "bench: gateway $1 did not start: $(cat "$work/$1.log")" >&2; exit 1; }
}
names=(off on); labels=("governance off" "governance on")
start_gw off off
start_gw on on
if [ -n "$compare" ]; then
    [ -x "$compare" ] || { echo "bench: --compare $compare is not an executable" >&2; exit 1; }
    start_gw cmp on "$compare"
    names+=(cmp); labels+=("on, --compare")
fi
declare -A pid port
i=0
for n in "${names[@]}"; do pid[$n]=${pids[$((1 + i))]}; port[$n]=$(head -n1 "$work/$n.ports"); i=$((i + 1)); done
nginx_port=$(python3 -c 'import socket;s=socket.socket();s.bind(("127.0.0.1",0));print(s.getsockname()[1])')
cat > "$work/nginx.conf" <<CONF
worker_processes 2;
pid $work/nginx.pid;
error_log $work/nginx-error.log warn;
events { worker_connections 4096; }
http {
    access_log off;
    upstream sim { server 127.0.0.1:$sim_port; keepalive 64; }
    server {
        listen 127.0.0.1:$nginx_port;
        location / { proxy_pass http://sim; proxy_http_version 1.1; proxy_set_header Connection ""; }
    }
}
CONF
/usr/sbin/nginx -c "$work/nginx.conf" -p "$work"
for _ in $(seq 1 100); do [ -s "$work/nginx.pid" ] && break; sleep 0.05; done
names+=(nginx); labels+=("nginx proxy"); port[nginx]=$nginx_port
pid[nginx]=$(pgrep -P "$(cat "$work/nginx.pid")" | tr '\n' ' ')
sleep 1.5 # budgets loaded, Redis connected

body='{"model":"deepseek-chat","max_tokens":16,"messages":[{"role":"user","content":"Write one sentence about benchmarks."}]}'
cat > "$work/post.lua" <<LUA
wrk.method = "POST"
wrk.headers["Content-Type"] = "application/json"
wrk.headers["Authorization"] = "Bearer $key"
wrk.body = '$body'
LUA
# run PORT -> "rps p50_ms p99_ms non2xx requests"
run() {
    local out; out=$(wrk -t2 -c"$conns" -d"${duration}s" --latency -s "$work/post.lua" "http://127.0.0.1:$1/v1/chat/completions")
    local rps p50 p99 bad req
    rps=$(awk '/Requests\/sec/ {print $2}' <<<"$out")
    p50=$(awk '$1=="50%" {print $2}' <<<"$out")
    p99=$(awk '$1=="99%" {print $2}' <<<"$out")
    bad=$(awk '/Non-2xx/ {print $NF}' <<<"$out"); bad=${bad:-0}
    req=$(awk '/requests in/ {print $1}' <<<"$out")
    ms() { awk -v v="$1" 'BEGIN { if (v ~ /us$/) printf "%.3f", v/1000; else if (v ~ /ms$/) printf "%.3f", v+0; else printf "%.3f", v*1000 }'; }
    echo "$rps $(ms "$p50") $(ms "$p99") $bad $req"
}
proc_cpu() { # utime+stime of the given pids, s (HZ 100)
    local f=(); for p in "$@"; do f+=("/proc/$p/stat"); done
    awk '{s += $14 + $15} END {printf "%.3f", s / 100}' "${f[@]}"
}
redis_cpu() { redis-cli -u "$TG_REDIS_URL" INFO cpu | awk -F: '/used_cpu_(user|sys):/ {s += $2} END {printf "%.3f", s}'; }
evalsha() { redis-cli -u "$TG_REDIS_URL" INFO commandstats | awk -F'[=,:]' '/cmdstat_evalsha/ {print $3}' | tr -d '\r'; }
script_us() { redis-cli -u "$TG_REDIS_URL" INFO commandstats | awk -F'[=,:]' '/cmdstat_evalsha/ {print $5}' | tr -d '\r'; }

for n in "${names[@]}"; do run "${port[$n]}" >/dev/null; done # warm up
declare -A lines reqs gcpu rcpu cmds sus
for r in $(seq 1 "$rounds"); do
    summary="round $r:"
    for n in "${names[@]}"; do
        g0=$(proc_cpu ${pid[$n]}); e0=$(evalsha); e0=${e0:-0}; c0=$(redis_cpu); u0=$(script_us); u0=${u0:-0}
        line=$(run "${port[$n]}")
        sleep 0.3; e1=$(evalsha); e1=${e1:-0}; c1=$(redis_cpu); g1=$(proc_cpu ${pid[$n]})
        u1=$(script_us); u1=${u1:-0}; sus[$n]=$(( ${sus[$n]:-0} + u1 - u0 ))
        lines[$n]+="$line;"
        reqs[$n]=$(( ${reqs[$n]:-0} + $(awk '{print $5}' <<<"$line") ))
        gcpu[$n]=$(awk -v a="${gcpu[$n]:-0}" -v b="$g0" -v c="$g1" 'BEGIN {printf "%.3f", a + c - b}')
        rcpu[$n]=$(awk -v a="${rcpu[$n]:-0}" -v b="$c0" -v c="$c1" 'BEGIN {printf "%.3f", a + c - b}')
        cmds[$n]=$(( ${cmds[$n]:-0} + e1 - e0 ))
        summary+=" $n ${line%% *} req/s"
    done
    echo "$summary"
done
median() { sort -n | awk '{a[NR]=$1} END {print a[int((NR+1)/2)]}'; }
col() { tr ';' '\n' <<<"$2" | awk -v i="$1" 'NF {print $i}' | median; }
echo
echo "== governance off vs on (median of $rounds rounds, ${duration}s each, $conns connections, 2 workers)"
printf "%-16s %9s %8s %8s %7s %12s %12s %13s %10s\n" "" "req/s" "p50 ms" "p99 ms" "ratio" "EVALSHA/req" "Redis us/req" "scripts us/req" "proxy us/req"
o_rps=$(col 1 "${lines[off]}"); o99=$(col 3 "${lines[off]}")
bad=0
for i in "${!names[@]}"; do
    n=${names[$i]}
    rps=$(col 1 "${lines[$n]}"); p50=$(col 2 "${lines[$n]}"); p99=$(col 3 "${lines[$n]}")
    bad=$((bad + $(tr ';' '\n' <<<"${lines[$n]}" | awk 'NF {s += $4} END {print s + 0}')))
    awk -v l="${labels[$i]}" -v rps="$rps" -v p50="$p50" -v p99="$p99" -v o="$o_rps" \
        -v c="${cmds[$n]}" -v su="${sus[$n]}" -v rc="${rcpu[$n]}" -v gc="${gcpu[$n]}" -v q="${reqs[$n]}" -v off="$([ "$n" = off ] || [ "$n" = nginx ] && echo 1 || echo 0)" \
        'BEGIN { printf "%-16s %9.0f %8.3f %8.3f %7.3f %12s %12s %13s %10.1f\n", l, rps, p50, p99, rps/o,
                 off ? "-" : sprintf("%.2f", q ? c/q : 0), off ? "-" : sprintf("%.1f", q ? 1e6*rc/q : 0),
                 off ? "-" : sprintf("%.1f", q ? su/q : 0), q ? 1e6*gc/q : 0 }'
done
g_rps=$(col 1 "${lines[on]}"); g99=$(col 3 "${lines[on]}")
awk -v o="$o_rps" -v g="$g_rps" -v o99="$o99" -v g99="$g99" 'BEGIN {
    printf "ratio on/off: %.3f req/s (%.1f%% fewer; target <= 15%%), p99 added %.3f ms\n", g/o, 100*(1-g/o), g99-o99 }'
echo "(EVALSHA/req: Redis script calls per governed request, admissions and settles batched per loop tick;"
echo " Redis us/req: Redis CPU per governed request; scripts us/req: of that, the time inside the"
echo " scripts (INFO commandstats, wall time: inflated when Redis is preempted); proxy us/req: the"
echo " proxy's CPU per request; ratio: req/s against governance off)"
echo "non-2xx answers during the runs: $bad"
