#!/usr/bin/env bash
# Serving parity: the same model served twice by `tollgate-engine serve`, on
# device A and device B (the GPU check runs cpu,cuda; cpu,cpu is its dry run
# without a GPU), the same greedy requests sent to both, the answers compared.
# Needs only bash, coreutils and sed: the HTTP client is bash's /dev/tcp
# (HTTP/1.1, Connection: close). Two models, each on a fresh pair of servers:
#   demo   engine/configs/demo-tiny.json, --random-init with a fixed seed, the
#          DeepSeek V3 tokenizer: chat (streamed and not), a text completion,
#          a long prompt sent twice (the second reads cached blocks), 6 chats
#          sent at once (continuous batching)
#   golden a golden fixture's float32 weights (vocabulary 512): completions
#          from token-id prompts: short, long twice, 4 at once
# A cuda side runs with --gpu-f32 (float32 weights: greedy tokens must not
# move). Each request's completion text, finish reason and usage (prompt,
# completion and cached tokens) must be identical on both sides; on each side
# a streamed answer must equal its non-streamed twin and the cache-hit repeat
# its first answer; /metrics token totals must agree, cache hits must be seen
# and batches of 2+ requests must have run on both sides.
# Prints serve_parity_* key=value lines, last `serve_parity_result=PASS|FAIL`;
# exit 0 on PASS, 1 on FAIL, 2 on bad usage or a server that did not start.
#   bench/serve-parity.sh --engine BIN --tokenizer DIR --config FILE --fixture DIR
#       [--devices cpu,cuda] [--out DIR] [--parts demo,golden] [--reply-timeout S]
#   --parts: which models (default both); --reply-timeout: seconds for one
#   reply (default 30; a slow sanitizer build needs more)
#   test-only, to see it fail: --seeds A,B (demo seed per side, default 7,7),
#       --fixtures DIR_A,DIR_B (a different golden model per side)
set -uo pipefail
export LC_ALL=C
eng="" tokdir="" config="" fixture="" devices=cpu,cuda seeds=7,7 fixtures="" out="" parts=demo,golden
reply_s=30
while [ $# -gt 0 ]; do
    case "$1" in
        --engine) eng=$2; shift 2 ;;
        --tokenizer) tokdir=$2; shift 2 ;;
        --config) config=$2; shift 2 ;;
        --fixture) fixture=$2; shift 2 ;;
        --devices) devices=$2; shift 2 ;;
        --seeds) seeds=$2; shift 2 ;;
        --parts) parts=$2; shift 2 ;;
        --reply-timeout) reply_s=$2; shift 2 ;;
        --fixtures) fixtures=$2; shift 2 ;;
        --out) out=$2; shift 2 ;;
        -h|--help) sed -n '2,27p' "$0"; exit 0 ;;
        *) echo "serve-parity: unknown option $1 (see --help)" >&2; exit 2 ;;
    esac
done
[ -n "$fixtures" ] || fixtures="$fixture,$fixture"
for v in eng tokdir config; do
    [ -n "${!v}" ] || { echo "serve-parity: --${v/eng/engine} is required (tokdir: --tokenizer)" >&2; exit 2; }
done
[ -x "$eng" ] || { echo "serve-parity: no engine binary at $eng" >&2; exit 2; }
[ -f "$tokdir/tokenizer.json" ] || { echo "serve-parity: no tokenizer.json in $tokdir" >&2; exit 2; }
[ -f "$config" ] || { echo "serve-parity: no model config at $config" >&2; exit 2; }
IFS=, read -r dev_a dev_b <<< "$devices"
IFS=, read -r seed_a seed_b <<< "$seeds"
IFS=, read -r fix_a fix_b <<< "$fixtures"
for d in "$dev_a" "$dev_b"; do
    case "$d" in cpu|cuda) ;; *) echo "serve-parity: --devices is two of cpu,cuda (got '$devices')" >&2; exit 2 ;; esac
done
for f in "$fix_a" "$fix_b"; do
    [ -f "$f/config.json" ] || { echo "serve-parity: no golden fixture at '$f' (--fixture DIR)" >&2; exit 2; }
done
[ -n "$out" ] || out=$(mktemp -d /tmp/serve-parity.XXXXXX)
mkdir -p "$out"
echo "serve-parity: A = $dev_a, B = $dev_b; answers and server logs in $out"

pids=() fail=0 n_req=0 n_same=0 hits_a=0 hits_b=0 bmax_a="" bmax_b="" problems=()
cleanup() { for p in "${pids[@]}"; do kill -TERM "$p" 2>/dev/null; done; wait 2>/dev/null; }
trap cleanup EXIT

# start_server SIDE DEVICE ARGS...: serve on a free loopback port; sets
# port_SIDE and pid_SIDE. Returns 1 (log tail printed) when it does not start
# within 60 s.
start_server() {
    local side=$1 dev=$2; shift 2
    local dargs=(--device "$dev")
    [ "$dev" = cuda ] && dargs+=(--gpu-f32) || dargs+=(--threads 2)
    local log="$out/$cur_part.$side"
    rm -f "$log.port"
    "$eng" serve "$@" "${dargs[@]}" --listen 127.0.0.1:0 --port-file "$log.port" \
        --name parity --kv-blocks 256 --max-running 32 --log-level warn \
        > "$log.stdout" 2> "$log.stderr" &
    local pid=$!
    pids+=("$pid")
    printf -v "pid_$side" %s "$pid"
    for _ in $(seq 600); do
        if [ -s "$log.port" ]; then
            printf -v "port_$side" %s "$(cat "$log.port")"
            # the CUDA memory plan, when there is one
            [ "$dev" = cuda ] && sed -n '1s/^/    /p' "$log.stderr"
            return 0
        fi
        kill -0 "$pid" 2>/dev/null || break
        sleep 0.1
    done
    echo "serve-parity: server $side ($dev) did not start:"; tail -5 "$log.stderr"
    return 1
}

# stop_server SIDE: SIGTERM, and it must exit 0.
stop_server() {
    local pid_var="pid_$1" rc=0
    kill -TERM "${!pid_var}" 2>/dev/null
    wait "${!pid_var}" || rc=$?
    if [ $rc != 0 ]; then
        fail=1; problems+=("$cur_part server $1 ended with status $rc (0 expected after SIGTERM)")
        echo "serve-parity: server $1 ended with status $rc (0 expected after SIGTERM):"; tail -5 "$out/$cur_part.$1.stderr"
    fi
}

# send PORT PATH BODY: opens a connection (its descriptor, picked by bash,
# in $fd; -1 when it failed) and writes the request. read_reply FD FILE: the
# whole reply (headers too) into FILE; closes FD.
send() {
    fd=-1
    exec {fd}<>"/dev/tcp/127.0.0.1/$1" || { fd=-1; return 1; }
    printf 'POST %s HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\nContent-Length: %d\r\nConnection: close\r\n\r\n%s' \
        "$2" "${#3}" "$3" >&"$fd"
}
read_reply() {
    local f=$1 rc=0
    [ "$f" -ge 0 ] || { echo "X no-connection" > "$2"; return 1; }
    timeout "$reply_s" cat <&"$f" > "$2.part" || rc=$?
    exec {f}<&-
    if [ $rc = 124 ]; then
        { echo "X no-reply-in-${reply_s}s"; cat "$2.part"; } > "$2"; rm -f "$2.part"
    else
        mv "$2.part" "$2"
    fi
}
get() {
    local g
    exec {g}<>"/dev/tcp/127.0.0.1/$1" || return 1
    printf 'GET %s HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n' "$2" >&"$g"
    timeout 10 cat <&"$g"
    exec {g}<&-
}

# summary FILE: one line "http=S finish=F usage={...} text=T" from a reply,
# streamed (SSE events, whatever their chunking) or not. The text is the
# completion as the server escaped it in JSON, pieces concatenated.
summary() {
    local f=$1 status
    status=$(head -1 "$f" | cut -d' ' -f2)
    if grep -q '^data: ' "$f"; then
        local text="" finish usage
        text=$(grep '^data: {' "$f" | sed -nE \
            -e 's/.*"delta":\{("role":"assistant",)?"content":"((\\.|[^"\\])*)"\}.*/\2/p' \
            -e 's/.*"choices":\[\{"text":"((\\.|[^"\\])*)","index".*/\1/p' | tr -d '\n')
        finish=$(grep -o '"finish_reason":"[a-z_]*"' "$f" | tail -1 | cut -d'"' -f4)
        usage=$(grep '"usage":{' "$f" | sed -E 's/.*"usage":(\{[^}]*\{[^}]*\}[^}]*\}).*/\1/' | tail -1)
        grep -q '^data: \[DONE\]' "$f" || finish="$finish(no [DONE])"
        echo "http=$status finish=$finish usage=$usage text=$text"
    else
        local body
        body=$(sed -n '/^\r$/,$p' "$f" | tail -n +2)
        echo "http=$status finish=$(grep -o '"finish_reason":"[a-z_]*"' <<< "$body" | cut -d'"' -f4)" \
             "usage=$(sed -nE 's/.*"usage":(\{[^}]*\{[^}]*\}[^}]*\}).*/\1/p' <<< "$body")" \
             "text=$(sed -nE -e 's/.*"message":\{"role":"assistant","content":"((\\.|[^"\\])*)"\}.*/\1/p' \
                             -e 's/.*"choices":\[\{"text":"((\\.|[^"\\])*)","index".*/\1/p' <<< "$body")"
    fi
}

# Request bodies of a part: "NAME PATH BODY" lines into $out/PART.requests;
# NAME starting with "batch" are sent together (all written, then all read).
chat() { # name stream max content
    local so=""; [ "$2" = true ] && so=',"stream_options":{"include_usage":true}'
    printf '%s /v1/chat/completions {"model":"parity","messages":[{"role":"user","content":"%s"}],"temperature":0,"max_tokens":%d,"stream":%s%s}\n' \
        "$1" "$4" "$3" "$2" "$so"
}
compl() { # name stream max prompt(JSON)
    local so=""; [ "$2" = true ] && so=',"stream_options":{"include_usage":true}'
    printf '%s /v1/completions {"model":"parity","prompt":%s,"temperature":0,"max_tokens":%d,"stream":%s%s}\n' \
        "$1" "$4" "$3" "$2" "$so"
}
ids() { # count mul add: [ (i*mul+add) mod 509 + 2 ... ]
    local s="" i
    for ((i = 0; i < $1; i++)); do s+="${s:+,}$(( (i * $2 + $3) % 509 + 2 ))"; done
    echo "[$s]"
}
long_text=""
for i in $(seq 1 40); do long_text+="Clause $i: the gateway meters every request and the engine answers it. "; done
{
    chat hello false 16 "Hello there, how are you?"
    chat hello_stream true 16 "Hello there, how are you?"
    compl text false 12 '"The quick brown fox jumps over"'
    chat long false 16 "$long_text"
    chat long_again_stream true 16 "$long_text"
    for i in 1 2 3 4 5 6; do
        chat "batch_$i" "$([ $((i % 2)) = 0 ] && echo true || echo false)" 24 \
            "Request number $i asks about topic $((i * 17)): tell me something."
    done
} > "$out/demo.requests"
{
    compl short false 12 "$(ids 40 7 3)"
    compl short_stream true 12 "$(ids 40 7 3)"
    compl long false 12 "$(ids 200 37 11)"
    compl long_again_stream true 12 "$(ids 200 37 11)"
    for i in 1 2 3 4; do
        compl "batch_$i" "$([ $((i % 2)) = 0 ] && echo true || echo false)" 16 "$(ids $((20 + 9 * i)) $((5 + 2 * i)) $i)"
    done
} > "$out/golden.requests"

# run_requests SIDE PART: every request of PART against server SIDE; each
# reply in $out/PART.SIDE.NAME.reply, its summary line in $out/PART.SIDE.sum.
run_requests() {
    local side=$1 part=$2 port_var="port_$1" name path body fd
    local batch=() fds=()
    : > "$out/$part.$side.sum"
    flush_batch() {
        [ ${#batch[@]} -gt 0 ] || return 0
        local i=0 b
        fds=()
        for b in "${batch[@]}"; do
            read -r name path body <<< "$b"
            send "${!port_var}" "$path" "$body"
            fds+=("$fd")
        done
        for b in "${batch[@]}"; do
            read -r name _ <<< "$b"
            read_reply "${fds[$i]}" "$out/$part.$side.$name.reply"
            echo "$name $(summary "$out/$part.$side.$name.reply")" >> "$out/$part.$side.sum"
            i=$((i + 1))
        done
        batch=()
    }
    while read -r name path body; do
        if [[ $name == batch_* ]]; then batch+=("$name $path $body"); continue; fi
        flush_batch
        send "${!port_var}" "$path" "$body"
        read_reply "$fd" "$out/$part.$side.$name.reply"
        echo "$name $(summary "$out/$part.$side.$name.reply")" >> "$out/$part.$side.sum"
    done < "$out/$part.requests"
    flush_batch
    get "${!port_var}" /metrics > "$out/$part.$side.metrics"
}

metric() { sed -n "s/^$1 //p" "$out/$2.metrics" | tr -d '\r'; }

# text_of PART SIDE NAME: the summary of one request without its usage (the
# cache-hit repeat differs in cached tokens, the stream in nothing else).
text_of() { grep "^$3 " "$out/$1.$2.sum" | sed -E 's/ usage=\{[^}]*\{[^}]*\}[^}]*\}//; s/^[^ ]* //'; }

# part NAME MODEL_ARGS_A -- MODEL_ARGS_B: one pair of servers, the requests,
# the comparison.
part() {
    local p=$1; shift
    local a=() b=()
    cur_part=$p
    while [ "$1" != -- ]; do a+=("$1"); shift; done
    shift; b=("$@")
    echo "== $p: A $dev_a ${a[*]}; B $dev_b ${b[*]}"
    if ! start_server A "$dev_a" "${a[@]}" || ! start_server B "$dev_b" "${b[@]}"; then
        echo "serve_parity_result=FAIL"; exit 2
    fi
    run_requests A "$p" & local ra=$!
    run_requests B "$p"; wait $ra
    stop_server A; stop_server B
    local name line_a line_b
    while read -r name _; do
        n_req=$((n_req + 1))
        line_a=$(grep "^$name " "$out/$p.A.sum"); line_b=$(grep "^$name " "$out/$p.B.sum")
        # an answer counts only when it parsed: 200, a finish reason, usage, text
        if [ -n "$line_a" ] && [ "$line_a" = "$line_b" ] &&
           [[ $line_a =~ \ http=200\ finish=(stop|length)\ usage=\{.+\}\ text=.+ ]]; then
            n_same=$((n_same + 1)); echo "same  $line_a"
        else
            fail=1
            echo "DIFF  A: ${line_a:-no answer}"; echo "      B: ${line_b:-no answer}"
            local k=0 from
            while [ $k -lt ${#line_a} ] && [ "${line_a:k:1}" = "${line_b:k:1}" ]; do k=$((k + 1)); done
            from=$((k > 24 ? k - 24 : 0))
            problems+=("$p $name: from byte $k: A '${line_a:from:64}' B '${line_b:from:64}'")
        fi
    done < "$out/$p.requests"
    local side first twin
    for side in A B; do
        for pair in hello:hello_stream short:short_stream long:long_again_stream; do
            first=${pair%%:*} twin=${pair#*:}
            grep -q "^$first " "$out/$p.$side.sum" || continue
            if [ "$(text_of "$p" "$side" "$first")" != "$(text_of "$p" "$side" "$twin")" ]; then
                fail=1; problems+=("$p side $side: $twin answered unlike $first")
                echo "DIFF  side $side: $twin answered unlike $first"
            fi
        done
        local h pa pb
        h=$(grep "^long_again_stream " "$out/$p.$side.sum" | grep -o '"cached_tokens":[0-9]*' | cut -d: -f2)
        if [ "${h:-0}" -lt 64 ]; then
            fail=1; problems+=("$p side $side: ${h:-no} cached tokens")
            echo "FAIL  side $side: the repeated long prompt read ${h:-no} cached tokens"
        fi
        [ $side = A ] && hits_a=$((hits_a + ${h:-0})) || hits_b=$((hits_b + ${h:-0}))
        local bm; bm=$(metric tollgate_engine_batch_size_max "$p.$side")
        [ $side = A ] && bmax_a+="${bmax_a:+/}${bm:-?}" || bmax_b+="${bmax_b:+/}${bm:-?}"
        if [ "${bm:-0}" -lt 2 ]; then
            fail=1; problems+=("$p side $side: no batch of 2+")
            echo "FAIL  side $side: no step ran 2+ requests (batch_size_max ${bm:-?})"
        fi
    done
    local m
    for m in tollgate_engine_prompt_tokens_total tollgate_engine_generated_tokens_total \
             tollgate_engine_cache_hit_tokens_total; do
        pa=$(metric $m "$p.A") pb=$(metric $m "$p.B")
        if [ -z "$pa" ] || [ "$pa" != "$pb" ]; then
            fail=1; problems+=("$p $m: A ${pa:-?} B ${pb:-?}")
            echo "DIFF  /metrics $m: A ${pa:-?} B ${pb:-?}"
        fi
        echo "$p $m A=$pa B=$pb"
    done
}

[[ ,$parts, == *,demo,* ]] &&
    part demo --random-init "$config" --seed "$seed_a" --tokenizer "$tokdir" -- \
              --random-init "$config" --seed "$seed_b" --tokenizer "$tokdir"
[[ ,$parts, == *,golden,* ]] &&
    part golden --model "$fix_a" --tokenizer "$tokdir" -- --model "$fix_b" --tokenizer "$tokdir"
[ "$n_req" -gt 0 ] || { echo "serve-parity: --parts names neither demo nor golden" >&2; exit 2; }

if [ ${#problems[@]} -gt 0 ]; then
    echo "serve-parity: ${#problems[@]} problems (first 6; details above and in $out):"
    printf '  %s\n' "${problems[@]:0:6}"
    for f in "$out"/*.stderr; do
        [ -s "$f" ] && { echo "  ${f##*/} (last 3 lines):"; tail -3 "$f" | sed 's/^/    /'; }
    done
fi
echo "serve_parity_requests=$n_req"
echo "serve_parity_same=$n_same"
echo "serve_parity_hit_tokens=A $hits_a, B $hits_b"
echo "serve_parity_batch_max=A $bmax_a, B $bmax_b (${parts//,//})"
[ $fail = 0 ] && { echo "serve_parity_result=PASS"; exit 0; }
echo "serve_parity_result=FAIL"
exit 1
