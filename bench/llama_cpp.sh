#!/bin/sh
# Side-by-side reference: llama.cpp llama-bench decode speed on a random-weight
# 1B-class llama (dim 2048, 16 heads, FFN 5632, vocab 32000) in F32, BF16, Q8_0.
#
# usage: bench/llama_cpp.sh [--quick] LLAMA_CPP_DIR WORK_DIR [layers]
#   LLAMA_CPP_DIR  llama.cpp checkout with build/bin/llama-bench, llama-quantize
#   WORK_DIR       where the GGUFs live (made if absent; F32 is ~4 GB at 17 layers)
#   layers         transformer blocks (default 17)
#   --quick        smoke test: -n 8 -r 1 instead of -n 64 -r 3
set -eu

n=64 r=3
if [ "${1:-}" = "--quick" ]; then n=8 r=1; shift; fi
[ $# -ge 2 ] || { sed -n '5,9s/^# \{0,1\}//p' "$0" >&2; exit 2; }
ll=$1 work=$2 layers=${3:-17}
bin=$ll/build/bin
here=$(cd "$(dirname "$0")" && pwd)
mkdir -p "$work"

echo "# llama.cpp $(git -C "$ll" rev-parse --short HEAD)" \
     "| cpu:$(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2)" \
     "| layers $layers | -t 2 -p 0 -n $n -r $r"

f32=$work/rand-${layers}L-F32.gguf
if [ ! -f "$f32" ]; then
    /usr/bin/python3 "$here/make_gguf.py" "$ll" "$f32.tmp" --layers "$layers"
    mv "$f32.tmp" "$f32"
fi
for q in BF16 Q8_0; do
    out=$work/rand-${layers}L-$q.gguf
    if [ ! -f "$out" ]; then
        "$bin/llama-quantize" "$f32" "$out.tmp" "$q" >"$out.log" 2>&1
        mv "$out.tmp" "$out"
    fi
done

# model_size is llama.cpp's sum of tensor bytes (includes token_embd).
printf '%-6s %10s %14s %10s\n' type tok/s weight_bytes GB/s
for q in F32 BF16 Q8_0; do
    "$bin/llama-bench" -m "$work/rand-${layers}L-$q.gguf" \
        -t 2 -p 0 -n "$n" -r "$r" -o csv 2>/dev/null |
    /usr/bin/python3 -c '
import csv, sys
for row in csv.DictReader(sys.stdin):
    ts, b = float(row["avg_ts"]), int(row["model_size"])
    print("%-6s %10.2f %14d %10.2f" % (sys.argv[1], ts, b, b * ts / 1e9))
' "$q"
done
