#!/usr/bin/env bash
# Governance benchmark: the cost of rate limits and budget holds on the
# request path. Two tollgate instances in one run against the same simulator,
# PostgreSQL and Redis, identical but for `governance = on|off`; the team has a
# budget and limits high enough never to refuse, so every request is governed
# (one EVALSHA before forwarding, one fire-and-forget EVALSHA at settle).
#
#   bench/governance.sh [--duration S] [--connections N] [--rounds R]
#
# Prints requests/s at saturation and p50/p99 latency (wrk) for each, taking
# turns R times (off, on, off, on, ...) and reporting the medians, the ratio
# on/off, and Redis commands per governed request (INFO commandstats).
set -euo pipefail
cd "$(dirname "$0")/.."
duration=8; conns=32; rounds=3
while [ $# -gt 0 ]; do
    case "$1" in
        --duration) duration=$2; shift 2 ;;
        --connections) conns=$2; shift 2 ;;
        --rounds) rounds=$2; shift 2 ;;
        -h|--help) sed -n '2,13p' "$0" | sed 's/^# \{0,1\}//'; exit 0 ;;
        *) echo "unknown argument $1" >&2; exit 2 ;;
    esac
done
command -v wrk >/dev/null || { echo "bench: wrk missing: run scripts/setup" >&2; exit 1; }
[ -x build/gateway/tollgate ] || { echo "bench: build first (meson setup build; ninja -C build)" >&2; exit 1; }

work=$(mktemp -d /tmp/tollgate-govbench.XXXXXX)
pids=()
finish() {
    for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done
    wait 2>/dev/null || true
    scripts/services stop "$work/services" >/dev/null 2>&1 || true
    rm -rf "$work"
}
trap finish EXIT

scripts/services start "$work/services" >/dev/null
set -a; . "$work/services/services.env"; set +a
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

start_gw() { # $1 = name, $2 = on|off
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
    build/gateway/tollgate --config "$work/$1.conf" --port-file "$work/$1.ports" \
        >/dev/null 2>"$work/$1.log" &
    pids+=($!)
    for _ in $(seq 1 200); do [ -s "$work/$1.ports" ] && break; sleep 0.05; done
    [ -s "$work/$1.ports" ] || { echo "bench: gateway $1 did not start: $(cat "$work/$1.log")" >&2; exit 1; }
}
start_gw off off
off_pid=${pids[-1]}
start_gw on on
on_pid=${pids[-1]}
off_port=$(head -n1 "$work/off.ports")
on_port=$(head -n1 "$work/on.ports")
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
proc_cpu() { awk '{printf "%.3f", ($14 + $15) / 100}' "/proc/$1/stat"; } # utime+stime, s (HZ 100)
redis_cpu() { redis-cli -u "$TG_REDIS_URL" INFO cpu | awk -F: '/used_cpu_(user|sys):/ {s += $2} END {printf "%.3f", s}'; }
evalsha() { redis-cli -u "$TG_REDIS_URL" INFO commandstats | awk -F'[=,:]' '/cmdstat_evalsha/ {print $3}' | tr -d '\r'; }

run "$off_port" >/dev/null; run "$on_port" >/dev/null # warm up
offs=(); ons=(); governed=0; cmds=0; rcpu=0; ocpu=0; gcpu=0; oreq=0
for r in $(seq 1 "$rounds"); do
    p0=$(proc_cpu "$off_pid")
    offs+=("$(run "$off_port")")
    p1=$(proc_cpu "$off_pid")
    ocpu=$(awk -v a="$ocpu" -v b="$p0" -v c="$p1" 'BEGIN {printf "%.3f", a + c - b}')
    oreq=$((oreq + $(awk '{print $5}' <<<"${offs[-1]}")))
    g0=$(proc_cpu "$on_pid")
    before=$(evalsha); before=${before:-0}; c0=$(redis_cpu)
    line=$(run "$on_port")
    sleep 0.3; after=$(evalsha); c1=$(redis_cpu)
    rcpu=$(awk -v a="$rcpu" -v b="$c0" -v c="$c1" 'BEGIN {printf "%.3f", a + c - b}')
    g1=$(proc_cpu "$on_pid")
    gcpu=$(awk -v a="$gcpu" -v b="$g0" -v c="$g1" 'BEGIN {printf "%.3f", a + c - b}')
    ons+=("$line")
    governed=$((governed + $(awk '{print $5}' <<<"$line"))); cmds=$((cmds + after - before))
    echo "round $r: off ${offs[-1]%% *} req/s, on ${line%% *} req/s"
done
median() { sort -n | awk '{a[NR]=$1} END {print a[int((NR+1)/2)]}'; }
col() { local i=$1; shift; for l in "$@"; do awk -v i="$i" '{print $i}' <<<"$l"; done | median; }
o_rps=$(col 1 "${offs[@]}"); g_rps=$(col 1 "${ons[@]}")
o50=$(col 2 "${offs[@]}"); g50=$(col 2 "${ons[@]}")
o99=$(col 3 "${offs[@]}"); g99=$(col 3 "${ons[@]}")
bad=$(for l in "${ons[@]}" "${offs[@]}"; do awk '{print $4}' <<<"$l"; done | paste -sd+ | bc)
echo
echo "== governance off vs on (median of $rounds rounds, ${duration}s each, $conns connections, 2 workers)"
printf "%-16s %10s %10s %10s\n" "" "req/s" "p50 ms" "p99 ms"
printf "%-16s %10.0f %10.3f %10.3f\n" "governance off" "$o_rps" "$o50" "$o99"
printf "%-16s %10.0f %10.3f %10.3f\n" "governance on" "$g_rps" "$g50" "$g99"
awk -v o="$o_rps" -v g="$g_rps" -v o99="$o99" -v g99="$g99" 'BEGIN {
    printf "ratio on/off: %.3f req/s (%.1f%% fewer; target <= 15%%), p99 added %.3f ms\n", g/o, 100*(1-g/o), g99-o99 }'
awk -v c="$cmds" -v n="$governed" 'BEGIN { printf "Redis EVALSHA per governed request: %.2f (1 admission on the request path + 1 settle after the answer)\n", (n ? c/n : 0) }'
awk -v c="$rcpu" -v n="$governed" 'BEGIN { printf "Redis CPU per 1000 governed requests: %.1f ms\n", (n ? 1000000*c/n : 0) }'
awk -v o="$ocpu" -v on="$oreq" -v g="$gcpu" -v gn="$governed" 'BEGIN {
    printf "gateway CPU per 1000 requests: off %.1f ms, on %.1f ms\n", (on ? 1000000*o/on : 0), (gn ? 1000000*g/gn : 0) }'
echo "non-2xx answers during the runs: $bad"
