#!/usr/bin/env bash
# Prepares build-gpu-bundle/ HERE (a machine with nvcc, no GPU needed) for the
# GPU machine, which has CUDA 13, gcc, meson, ninja, libevent and OpenSSL but
# not cJSON and cannot install anything: the engine binary and its two GPU
# test programs built for sm_90a, the few shared libraries that machine lacks
# (cJSON; libevent and libcudart ride along, small and harmless), the golden
# fixtures, the V2-Lite and demo-tiny configs and the DeepSeek V3 tokenizer
# (for the serving parity step, bench/serve-parity.sh; scripts/setup puts it in
# data/tokenizers/deepseek-v3). cuBLAS is NOT bundled (600 MB): the GPU
# machine's own /usr/local/cuda/lib64 provides it. The bundle must stay under
# 64 MiB (the device tool's carry limit); the script refuses otherwise.
#   bench/gpu-bundle.sh [--build DIR]      then: bench/gpu-check.sh on the GPU
set -euo pipefail
cd "$(dirname "$0")/.."
build=build-gpu out=build-gpu-bundle
while [ $# -gt 0 ]; do
    case "$1" in
        --build) build=$2; shift 2 ;;
        -h|--help) sed -n '2,12p' "$0"; exit 0 ;;
        *) echo "bench/gpu-bundle.sh: unknown option $1 (see --help)" >&2; exit 2 ;;
    esac
done
export PATH=$PATH:/usr/local/cuda/bin
command -v nvcc >/dev/null || { echo "gpu-bundle: nvcc not found (looked on PATH and in /usr/local/cuda/bin)" >&2; exit 1; }
fixtures=../shared/fixtures/engine-golden
[ -d "$fixtures" ] || { echo "gpu-bundle: no fixtures at $fixtures" >&2; exit 1; }
tokdir=data/tokenizers/deepseek-v3
[ -f "$tokdir/tokenizer.json" ] && [ -f "$tokdir/tokenizer_config.json" ] ||
    { echo "gpu-bundle: no tokenizer at $tokdir (scripts/setup --no-build puts it there)" >&2; exit 1; }
[ -d "$build" ] || meson setup "$build" -Dcuda=enabled -Dbuildtype=debugoptimized >/dev/null
ninja -C "$build" -j2 engine/tollgate-engine tests/unit/engine_cuda/test_engine_cuda_ops \
    tests/unit/engine_cuda/test_engine_cuda_golden >/dev/null
rm -rf "$out"
mkdir -p "$out/bin" "$out/lib" "$out/fixtures"
for b in engine/tollgate-engine tests/unit/engine_cuda/test_engine_cuda_ops \
         tests/unit/engine_cuda/test_engine_cuda_golden; do
    # host debug info off (size); the device code keeps -lineinfo for compute-sanitizer
    objcopy --strip-debug "$build/$b" "$out/bin/$(basename "$b")"
done
for lib in libcjson.so.1 libevent-2.1.so.7 libevent_core-2.1.so.7 libevent_pthreads-2.1.so.7 \
           libcudart.so.13; do
    path=$(ldd "$out/bin/tollgate-engine" | awk -v l="$lib" '$1 == l {print $3}')
    [ -n "$path" ] || { echo "gpu-bundle: tollgate-engine does not link $lib?" >&2; exit 1; }
    cp -L "$path" "$out/lib/$lib"
done
cp -r "$fixtures" "$out/fixtures/"
chmod -R u+w "$out/fixtures"
cp engine/configs/v2-lite.json engine/configs/demo-tiny.json "$out/"
mkdir -p "$out/tokenizer"
cp -r "$tokdir" "$out/tokenizer/"
{
    echo "commit $(git rev-parse HEAD)$(git diff --quiet HEAD -- engine tests bench || echo ' (with uncommitted changes)')"
    echo "built $(date -u +%FT%TZ) on $(uname -n) with $(nvcc --version | tail -1)"
    (cd "$out" && find . -type f -printf '%s %p\n' | sort -k2)
} > "$out/MANIFEST"
kb=$(du -sk "$out" | cut -f1)
echo "gpu-bundle: $out is $((kb / 1024)) MiB"
[ "$kb" -lt $((60 * 1024)) ] || { echo "gpu-bundle: too large for the 64 MiB carry limit" >&2; exit 1; }
