#!/usr/bin/env bash
# Ledger benchmark through the gateway: requests/s and latency with the usage
# ledger on against off (target: at most 10% fewer requests/s). Four tollgate
# instances in one run, identical (same simulator, PostgreSQL, priced model,
# 2 workers each) except for the ledger:
#   off       spool_ledger = off-for-benchmarks: the record is still built and
#             priced, then discarded (no journal, no writer, no PostgreSQL
#             row). A benchmarks-only switch: never in production.
#   memory    no spool_dir: records queue in memory, the writer inserts them
#   interval  spool_dir, spool_sync = interval (the production default)
#   always    spool_dir, spool_sync = always (an fdatasync per answer, grouped)
#
#   bench/ledger-gateway.sh [--duration S] [--connections N] [--rounds R] [--rate Q]
#
# Saturation: wrk for S seconds per instance, taking turns R times (off,
# memory, interval, always, off, ...), medians reported. After each run the
# script waits until that instance's usage backlog has drained, so that one
# run's PostgreSQL work does not slow the next. Fixed rate: hey at Q req/s
# (default: half of the "off" maximum) for the p50/p99 at a load the machine
# can sustain. Also prints CPU per 1000 requests (each run plus its drain) of
# the gateway and of PostgreSQL (all its processes; 0 when its pid file is
# unreadable), the ratio of gateway CPU per request off/on (what the ledger
# costs the gateway itself when PostgreSQL has its own host), how long each
# backlog took to drain, and each metered instance's usage counters.
set -euo pipefail
cd "$(dirname "$0")/.."
. bench/lib.sh
duration=8; conns=32; rounds=3; rate=0
while [ $# -gt 0 ]; do
    case "$1" in
        --duration) duration=$2; shift 2 ;;
        --connections) conns=$2; shift 2 ;;
        --rounds) rounds=$2; shift 2 ;;
        --rate) rate=$2; shift 2 ;;
        -h|--help) sed -n '2,23p' "$0" | sed 's/^# \{0,1\}//'; exit 0 ;;
        *) echo "unknown argument $1" >&2; exit 2 ;;
    esac
done
bench_need wrk hey curl

bench_start ledgergw
ctl=build/gateway/ctl/tollgatectl
$ctl migrate >/dev/null
$ctl price seed >/dev/null
$ctl team create bench >/dev/null
key=$($ctl key create --team bench 2>/dev/null)
pg_data=$(cat "$work/services/pg-location" 2>/dev/null || echo "$work/services/pg")
pg_pid=$(head -n1 "$pg_data/postmaster.pid" 2>/dev/null || echo 0) # readable when run as root

build/sim/tollgate-sim --listen 127.0.0.1:0 --port-file "$work/sim.port" --completion-tokens 16 \
    --cache off >/dev/null 2>"$work/sim.log" &
pids+=($!)
for _ in $(seq 1 100); do [ -s "$work/sim.port" ] && break; sleep 0.05; done
sim_port=$(cat "$work/sim.port")

variants=(off memory interval always)
declare -A port admin gpid
start_gw() { # $1 = variant
    local extra=""
    case $1 in
        off) extra="spool_ledger = off-for-benchmarks" ;;
        memory) extra="" ;;
        interval) extra="spool_dir = $work/spool-interval"$'\n'"spool_sync = interval" ;;
        always) extra="spool_dir = $work/spool-always"$'\n'"spool_sync = always" ;;
    esac
    cat > "$work/$1.conf" <<CONF
[gateway]
listen = 127.0.0.1:0
admin_listen = 127.0.0.1:0
workers = 2
postgres = $TG_PG_CONNINFO
admin_token = none
log_level = warn
$extra
[provider deepseek]
kind = deepseek
base_url = http://127.0.0.1:$sim_port/v1
api_key = none
[model deepseek-chat]
provider = deepseek upstream=deepseek-chat context=65536
CONF
    build/gateway/tollgate --config "$work/$1.conf" --port-file "$work/$1.ports" \
        >/dev/null 2>"$work/$1.log" &
    gpid[$1]=$!; pids+=($!)
    for _ in $(seq 1 200); do [ -s "$work/$1.ports" ] && [ "$(wc -l < "$work/$1.ports")" -ge 2 ] && break; sleep 0.05; done
    [ -s "$work/$1.ports" ] || { echo "bench: gateway $1 did not start: $(cat "$work/$1.log")" >&2; exit 1; }
    port[$1]=$(sed -n 1p "$work/$1.ports"); admin[$1]=$(sed -n 2p "$work/$1.ports")
}
for v in "${variants[@]}"; do start_gw "$v"; done
grep -h "usage ledger OFF" "$work/off.log" | sed 's/^/off instance says: /' | cut -c1-160
sleep 1.5 # keys and prices loaded

body='{"model":"deepseek-chat","max_tokens":16,"messages":[{"role":"user","content":"Write one sentence about benchmarks."}]}'
cat > "$work/post.lua" <<LUA
wrk.method = "POST"
wrk.headers["Content-Type"] = "application/json"
wrk.headers["Authorization"] = "Bearer $key"
wrk.body = '$body'
LUA
ms() { awk -v v="$1" 'BEGIN { if (v ~ /us$/) printf "%.3f", v/1000; else if (v ~ /ms$/) printf "%.3f", v+0; else printf "%.3f", v*1000 }'; }
# run PORT -> "rps p50_ms p99_ms non2xx requests"
run() {
    local out; out=$(wrk -t2 -c"$conns" -d"${duration}s" --latency -s "$work/post.lua" "http://127.0.0.1:$1/v1/chat/completions")
    local rps p50 p99 bad req
    rps=$(awk '/Requests\/sec/ {print $2}' <<<"$out")
    p50=$(awk '$1=="50%" {print $2}' <<<"$out")
    p99=$(awk '$1=="99%" {print $2}' <<<"$out")
    bad=$(awk '/Non-2xx/ {print $NF}' <<<"$out"); bad=${bad:-0}
    req=$(awk '/requests in/ {print $1}' <<<"$out")
    echo "$rps $(ms "$p50") $(ms "$p99") $bad $req"
}
pending() { curl -s --max-time 2 "127.0.0.1:${admin[$1]}/metrics" | awk '/^tollgate_usage_rows_pending / {v = $2} END {print v}' || true; }
drain() { # waits (at most 120 s) until variant $1 has nothing pending; prints seconds waited
    local t0; t0=$(date +%s.%N)
    for _ in $(seq 1 1200); do [ "$(pending "$1")" = "0" ] && break; sleep 0.1; done
    awk -v a="$t0" -v b="$(date +%s.%N)" 'BEGIN {printf "%.1f", b - a}'
}
proc_cpu() { awk '{printf "%.3f", ($14 + $15) / 100}' "/proc/$1/stat" 2>/dev/null || echo 0; } # s (HZ 100)
pg_cpu() { # all PostgreSQL processes of this cluster, living ones (backends come and go)
    local t=0 p
    for p in $pg_pid $(pgrep -P "$pg_pid" 2>/dev/null); do
        t=$(awk -v a="$t" -v b="$(proc_cpu "$p")" 'BEGIN {printf "%.3f", a + b}')
    done
    echo "$t"
}

for v in "${variants[@]}"; do run "${port[$v]}" >/dev/null; drain "$v" >/dev/null; done # warm up
declare -A res gcpu pcpu nreq drained
for r in $(seq 1 "$rounds"); do
    line="round $r:"
    for v in "${variants[@]}"; do
        g0=$(proc_cpu "${gpid[$v]}"); p0=$(pg_cpu)
        out=$(run "${port[$v]}")
        d=$(drain "$v") # the backlog's writing is part of the ledger's cost
        g1=$(proc_cpu "${gpid[$v]}"); p1=$(pg_cpu)
        res[$v]="${res[$v]:-}$out"$'\n'
        gcpu[$v]=$(awk -v a="${gcpu[$v]:-0}" -v b="$g0" -v c="$g1" 'BEGIN {printf "%.3f", a + c - b}')
        pcpu[$v]=$(awk -v a="${pcpu[$v]:-0}" -v b="$p0" -v c="$p1" 'BEGIN {printf "%.3f", a + c - b}')
        nreq[$v]=$(( ${nreq[$v]:-0} + $(awk '{print $5}' <<<"$out") ))
        drained[$v]="${drained[$v]:-} $d"
        line="$line $v ${out%% *}"
    done
    echo "$line req/s"
done
median() { sort -n | awk '{a[NR]=$1} END {print a[int((NR+1)/2)]}'; }
col() { awk -v i="$1" 'NF {print $i}' <<<"$2" | median; }
off_rps=$(col 1 "${res[off]}")
echo
echo "== ledger on vs off through the gateway (median of $rounds rounds, ${duration}s each, $conns connections, 2 workers; PostgreSQL on the same machine)"
printf "%-10s %9s %9s %9s %9s %12s %12s %10s\n" "ledger" "req/s" "vs off" "p50 ms" "p99 ms" "gw CPU/1k" "PG CPU/1k" "non-2xx"
for v in "${variants[@]}"; do
    bad=$(awk 'NF {s += $4} END {print s + 0}' <<<"${res[$v]}")
    awk -v n="$v" -v r="$(col 1 "${res[$v]}")" -v o="$off_rps" -v p50="$(col 2 "${res[$v]}")" \
        -v p99="$(col 3 "${res[$v]}")" -v g="${gcpu[$v]}" -v p="${pcpu[$v]}" -v q="${nreq[$v]}" -v b="$bad" \
        'BEGIN {printf "%-10s %9.0f %9.3f %9.3f %9.3f %10.1fms %10.1fms %10d\n", n, r, r / o, p50, p99, 1e6 * g / q, 1e6 * p / q, b}'
done
for v in memory interval always; do
    echo "seconds to drain the backlog after each $v run:${drained[$v]}"
done
awk -v o="$off_rps" -v i="$(col 1 "${res[interval]}")" 'BEGIN {
    printf "ratio on (spool interval) / off, req/s on this machine: %.3f (%.1f%% fewer; target at most 10%% fewer): %s\n", i / o, 100 * (1 - i / o), (i / o >= 0.9 ? "met" : "NOT met") }'
# PostgreSQL shares this machine's cores with the gateway, so at saturation
# every row it inserts takes CPU from the gateway. The gateway's own cost of
# the ledger (journal append, writer thread) is its CPU per request: the
# capacity ratio when PostgreSQL runs on its own host.
awk -v go="${gcpu[off]}" -v qo="${nreq[off]}" -v gi="${gcpu[interval]}" -v qi="${nreq[interval]}" 'BEGIN {
    o = go / qo; i = gi / qi
    printf "gateway CPU per request, off / on (spool interval): %.3f (the ledger adds %.1f us of gateway CPU per request, %.1f%%): %s\n", o / i, 1e6 * (i - o), 100 * (i / o - 1), (o / i >= 0.9 ? "within 10%" : "over 10%") }'

# Fixed rate: the latency a client sees at a load the machine sustains.
[ "$rate" -gt 0 ] || rate=$(awk -v r="$off_rps" 'BEGIN {print int(r / 2)}')
echo
echo "== fixed rate: $rate req/s for ${duration}s each (hey, 8 connections)"
printf "%-10s %9s %9s %9s %9s\n" "ledger" "req/s" "p50 ms" "p99 ms" "errors"
for v in "${variants[@]}"; do
    q=$(awk -v r="$rate" 'BEGIN {q = int(r / 8); if (q < 1) q = 1; print q}')
    out=$(hey -z "${duration}s" -c 8 -q "$q" -m POST -T application/json -H "Authorization: Bearer $key" \
        -d "$body" "http://127.0.0.1:${port[$v]}/v1/chat/completions")
    rps=$(awk '/Requests\/sec/ {print $2}' <<<"$out")
    p50=$(awk '/50%% in|50% in/ {print $3 * 1000}' <<<"$out")
    p99=$(awk '/99%% in|99% in/ {print $3 * 1000}' <<<"$out")
    errs=$(awk '/Status code distribution/{f=1;next} /Error distribution/{e=1} f&&/\[[0-9]+\]/&&!/\[200\]/{n+=$2} e&&/\[[0-9]+\]/{n+=$1} END{print n+0}' <<<"$out")
    drain "$v" >/dev/null
    printf "%-10s %9.0f %9.3f %9.3f %9d\n" "$v" "$rps" "$p50" "$p99" "$errs"
done

rows=$(psql "$TG_PG_CONNINFO" -Atc "select count(*) from usage_events")
echo
echo "usage rows in PostgreSQL: $rows (off instance: none written by design)"
for v in memory interval always; do
    echo "$v: $(curl -s "127.0.0.1:${admin[$v]}/metrics" | awk '/^tollgate_(usage_rows_(written_total|pending)|spool_bytes) / {printf "%s=%s ", $1, $2}')"
done
