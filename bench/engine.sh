#!/usr/bin/env bash
# CPU engine benchmark: prefill and batch-1 decode tokens/s of a random-weight
# DeepSeek-V2-Lite-shaped model cut to 4 layers and 16 experts (1.8 GB float32,
# ~0.9 GB read per decode token: well above this machine's caches) against the
# memory-bandwidth floor measured in the same run (float32 bytes of weights one
# decode token reads / memcpy rate; decode runs in 4 rounds, each followed by a copy
# measurement, and the medians are shown). Prints a table; the last column is
# decode time per token over the floor (1.0 = at the floor, 2.0 = half its speed).
# Then decode tokens/s with 1, 4, 16 sequences stepping together (one weight
# read serves the whole batch).
#   bench/engine.sh [--threads N] [--prompt-len N] [--decode-tokens N]
#                   [--batches 1,4,16] [--build DIR]
set -euo pipefail
cd "$(dirname "$0")/.."
build=build threads=$(nproc) prompt=128 decode=24 batches=1,4,16
while [ $# -gt 0 ]; do
    case "$1" in
        --threads) threads=$2; shift 2 ;;
        --prompt-len) prompt=$2; shift 2 ;;
        --decode-tokens) decode=$2; shift 2 ;;
        --build) build=$2; shift 2 ;;
        --batches) batches=$2; shift 2 ;;
        -h|--help) sed -n '2,12p' "$0"; exit 0 ;;
        *) echo "bench/engine.sh: unknown option $1 (see --help)" >&2; exit 2 ;;
    esac
done
[ -d "$build" ] || meson setup "$build" >/dev/null
ninja -C "$build" -j2 engine/tollgate-engine >/dev/null
bin="$build/engine/tollgate-engine"
tmp=$(mktemp -d); trap 'rm -rf "$tmp"' EXIT
# V2-Lite's attention and expert shapes (hidden 2048, 16 heads, kv_lora 512,
# experts 704 wide, top-4 of 16 routed + 2 shared, yarn) with 4 layers and a
# 32000 vocabulary, so it fits next to other work on this machine.
cat > "$tmp/config.json" <<'JSON'
{"model_type": "deepseek_v2", "hidden_size": 2048, "num_hidden_layers": 4,
 "num_attention_heads": 16, "vocab_size": 32000, "intermediate_size": 5632,
 "moe_intermediate_size": 704, "q_lora_rank": null, "kv_lora_rank": 512,
 "qk_nope_head_dim": 128, "qk_rope_head_dim": 64, "v_head_dim": 128,
 "n_routed_experts": 16, "n_shared_experts": 2, "num_experts_per_tok": 4,
 "first_k_dense_replace": 1, "topk_method": "greedy", "scoring_func": "softmax",
 "routed_scaling_factor": 1.0, "rms_norm_eps": 1e-6, "rope_theta": 10000,
 "max_position_embeddings": 16384, "initializer_range": 0.02,
 "rope_scaling": {"type": "yarn", "factor": 40, "original_max_position_embeddings": 4096,
                  "mscale": 0.707, "mscale_all_dim": 0.707, "beta_fast": 32, "beta_slow": 1}}
JSON
"$bin" bench --random-init "$tmp/config.json" --threads "$threads" --prompt-len "$prompt" \
    --decode-tokens "$decode" --copy-mb 512 --batches "$batches" > "$tmp/out"
get() { sed -n "s/^$1=//p" "$tmp/out"; }
awk -v t="$(get threads)" -v wb="$(get weight_bytes)" -v ab="$(get active_bytes_per_token)" \
    -v bw="$(get copy_bytes_per_s)" -v pts="$(get prefill_tok_s)" -v pl="$(get prefill_tokens)" \
    -v dts="$(get decode_tok_s)" -v fl="$(get decode_floor_tok_s)" -v r="$(get decode_time_vs_floor)" \
    -v kv="$(get kv_bytes_per_token)" 'BEGIN {
    printf "model: %.0f MB float32 weights, %.1f MB read per decode token, %d B latent cache per token\n", wb/1e6, ab/1e6, kv
    printf "memcpy (%d threads, median): %.2f GB/s -> decode floor %.1f tokens/s (%.2f ms/token)\n", t, bw/1e9, fl, 1000/fl
    printf "| threads | prefill tok/s (%d-token prompt) | decode tok/s (batch 1) | floor tok/s | decode time / floor |\n", pl
    printf "|---|---|---|---|---|\n"
    printf "| %d | %.0f | %.2f | %.1f | %.2f |\n", t, pts, dts, fl, r
}'
echo
echo "| batch | decode tok/s (all sequences) | vs batch 1 |"
echo "|---|---|---|"
b1=$(sed -n 's/^batch_1_decode_tok_s=//p' "$tmp/out")
sed -n 's/^batch_\([0-9]*\)_decode_tok_s=\(.*\)/\1 \2/p' "$tmp/out" | while read -r b r; do
    awk -v b="$b" -v r="$r" -v b1="${b1:-$r}" 'BEGIN { printf "| %d | %.2f | %.2fx |\n", b, r, r / b1 }'
done
