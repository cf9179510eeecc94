#!/usr/bin/env bash
# Ledger benchmark: backlog drain after a PostgreSQL outage at steady load.
# One tollgate (2 workers, spool_dir with the default interval sync, a priced
# model) in front of the simulator takes a steady load at a stated rate (hey,
# a fixed number of requests so that every one completes). After a warm-up,
# PostgreSQL is stopped (scripts/services pg-stop) for the outage, then
# started again; the load goes on throughout. Reported: rows backlogged when
# PostgreSQL returned, the time until the backlog was gone (pending back to
# its level before the outage, sampled every 0.2 s from the metrics page) and
# the drain rate; then, once the load has ended and the spool is empty, the
# row count against the 2xx answers (must be equal) and `tollgatectl usage
# verify --spool` (must report 0 differences).
#
#   bench/ledger-outage.sh [--outage S] [--rate R] [--warmup S] [--after S] [--batch N]
#
# Defaults: a 300 s outage at 1000 req/s, 10 s warm-up, the load going on for
# 60 s after PostgreSQL returns, the gateway's default usage_batch. For a
# quick run: --outage 20.
set -euo pipefail
cd "$(dirname "$0")/.."
. bench/lib.sh
outage=300; rate=1000; warmup=10; after=60; batch=""
while [ $# -gt 0 ]; do
    case "$1" in
        --outage) outage=$2; shift 2 ;;
        --rate) rate=$2; shift 2 ;;
        --warmup) warmup=$2; shift 2 ;;
        --after) after=$2; shift 2 ;;
        --batch) batch=$2; shift 2 ;;
        -h|--help) sed -n '2,18p' "$0" | sed 's/^# \{0,1\}//'; exit 0 ;;
        *) echo "unknown argument $1" >&2; exit 2 ;;
    esac
done
bench_need hey curl

bench_start ledgerout
ctl=build/gateway/ctl/tollgatectl
$ctl migrate >/dev/null
$ctl price seed >/dev/null
$ctl team create bench >/dev/null
key=$($ctl key create --team bench 2>/dev/null)

build/sim/tollgate-sim --listen 127.0.0.1:0 --port-file "$work/sim.port" --completion-tokens 16 \
    --cache off >/dev/null 2>"$work/sim.log" &
pids+=($!)
for _ in $(seq 1 100); do [ -s "$work/sim.port" ] && break; sleep 0.05; done

cat > "$work/gw.conf" <<CONF
[gateway]
listen = 127.0.0.1:0
admin_listen = 127.0.0.1:0
workers = 2
postgres = $TG_PG_CONNINFO
admin_token = none
log_level = warn
spool_dir = $work/spool
${batch:+usage_batch = $batch}
[provider deepseek]
kind = deepseek
base_url = http://127.0.0.1:$(cat "$work/sim.port")/v1
api_key = none
[model deepseek-chat]
provider = deepseek upstream=deepseek-chat context=65536
CONF
build/gateway/tollgate --config "$work/gw.conf" --port-file "$work/ports" >/dev/null 2>"$work/gw.log" &
pids+=($!)
for _ in $(seq 1 200); do [ -s "$work/ports" ] && [ "$(wc -l < "$work/ports")" -ge 2 ] && break; sleep 0.05; done
[ -s "$work/ports" ] || { echo "bench: gateway did not start: $(cat "$work/gw.log")" >&2; exit 1; }
port=$(sed -n 1p "$work/ports"); admin=$(sed -n 2p "$work/ports")
sleep 1.5 # keys and prices loaded

metric() { curl -s --max-time 2 "127.0.0.1:$admin/metrics" | awk -v m="$1" '$1 == m {v = $2} END {print v}' || true; }
now() { date +%s.%N; }
since() { awk -v a="$1" -v b="$(now)" 'BEGIN {printf "%.1f", b - a}'; }

body='{"model":"deepseek-chat","max_tokens":16,"messages":[{"role":"user","content":"Write one sentence about benchmarks."}]}'
total=$(( rate * (warmup + outage + after) ))
c=8; q=$(awk -v r="$rate" -v c=$c 'BEGIN {q = int(r / c); if (q < 1) q = 1; print q}')
echo "load: $total requests at $rate req/s (hey, $c connections x $q req/s); outage ${outage}s after ${warmup}s"
t_start=$(now)
hey -n "$total" -c $c -q "$q" -t 30 -m POST -T application/json -H "Authorization: Bearer $key" \
    -d "$body" "http://127.0.0.1:$port/v1/chat/completions" > "$work/hey.out" 2>&1 &
hey_pid=$!; pids+=($hey_pid)

# Warm-up: the level `pending` keeps at this rate with PostgreSQL up.
steady=0
end=$(awk -v a="$(now)" -v w="$warmup" 'BEGIN {printf "%.3f", a + w}')
while awk -v e="$end" -v n="$(now)" 'BEGIN {exit !(n < e)}'; do
    p=$(metric tollgate_usage_rows_pending); p=${p:-0}
    [ "$p" -gt "$steady" ] && steady=$p
    sleep 0.2
done
threshold=$(( steady > 100 ? steady : 100 ))
echo "warm-up: pending at most $steady (drained = pending <= $threshold)"

scripts/services pg-stop "$work/services" >/dev/null
t_down=$(now)
echo "PostgreSQL stopped at +$(since "$t_start") s; outage ${outage}s"
sleep "$outage"
backlog=$(metric tollgate_usage_rows_pending)
spool_bytes=$(metric tollgate_spool_bytes)
scripts/services pg-start "$work/services" >/dev/null
t_up=$(now)
echo "PostgreSQL started at +$(since "$t_start") s; backlog $backlog rows, spool $spool_bytes bytes"

drain_s=""; curve=""
for i in $(seq 0 9000); do # 30 minutes at most
    p=$(metric tollgate_usage_rows_pending)
    [ $((i % 5)) -eq 0 ] && curve="$curve $(since "$t_up")s:${p:-?}"
    if [ -n "$p" ] && [ "$p" -le "$threshold" ]; then drain_s=$(since "$t_up"); break; fi
    sleep 0.2
done
[ -n "$drain_s" ] || { echo "bench: the backlog did not drain within 30 minutes" >&2; exit 1; }
echo "backlog drained in $drain_s s (load still running); pending every second:$curve"

wait $hey_pid || true
for _ in $(seq 1 600); do [ "$(metric tollgate_usage_rows_pending)" = "0" ] && break; sleep 0.1; done
ok=$(awk '/Status code distribution/ {f = 1; next} f && /\[200\]/ {print $2; exit}' "$work/hey.out")
other=$(awk '/Status code distribution/ {f = 1; next} /Error distribution/ {e = 1} f && /\[[0-9]+\]/ && !/\[200\]/ {n += $2} e && /\[[0-9]+\]/ {n += $1} END {print n + 0}' "$work/hey.out")
rows=$(psql "$TG_PG_CONNINFO" -Atc "select count(*) from usage_events")
from=$(date -u -d 'yesterday' +%F); to=$(date -u -d 'tomorrow' +%F)
$ctl usage verify --from "$from" --to "$to" --spool "$work/spool" > "$work/verify.out" 2>&1 || true

echo
echo "| outage | rate (req/s) | rows backlogged | drain time (s) | net drain rate (rows/s) | gross write rate (rows/s) | 2xx answers | other answers | rows | verify |"
echo "|---|---|---|---|---|---|---|---|---|---|"
awk -v o="$outage" -v r="$rate" -v b="$backlog" -v d="$drain_s" -v ok="${ok:-0}" -v x="$other" -v rows="$rows" \
    -v v="$(tail -n1 "$work/verify.out")" 'BEGIN {
    printf "| %d s | %d | %d | %.1f | %.0f | %.0f | %d | %d | %d | %s |\n", o, r, b, d, b / d, b / d + r, ok, x, rows, v }'
echo
echo "net drain rate: backlog / drain time; gross: the rows PostgreSQL took per second meanwhile (backlog plus the new load)."
echo "the writer retries every 2 s at most while PostgreSQL is down: up to 2 s of the drain time is that wait."
[ "$rows" = "${ok:-x}" ] && echo "rows = 2xx answers: exact" || echo "rows ($rows) != 2xx answers (${ok:-?}): CHECK"
sed 's/^/verify: /' "$work/verify.out"
grep -c "will retry\|records wait" "$work/gw.log" | sed 's/^/gateway log lines about the outage: /'
