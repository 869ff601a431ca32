#!/usr/bin/env bash
# Self-speculative decoding on a model mtp did not train: the PyTorch twin
# (tools/mtp_twin.py, an independent implementation of the same architecture) trains a
# byte-level model with 4 future heads and writes it as safetensors in Meta's layout;
# mtp loads it and compares plain, block and tree greedy decoding (outputs checked
# identical). The trunk is deep (6 layers + 4 head layers) so that a verification pass
# reads little more than a plain one, as in the paper's models.
# Usage: bench/twin_decode.sh [WORKDIR]   (default bench-twin/; TWIN_STEPS, default 300)
set -euo pipefail
cd "$(dirname "$0")/.."
make -s
work=${1:-bench-twin}
steps=${TWIN_STEPS:-300}
py=/usr/bin/python3
mkdir -p "$work"

if [ ! -f "$work/data/train.bin" ]; then
    corpus=$(ls -d /usr/lib/python3.[0-9]* 2>/dev/null | sort -V | tail -n 1 || true)
    [ -n "$corpus" ] || corpus="src cli tests tools"
    build/mtp prepare --out "$work/data" --max-mb 24 $corpus
fi
cat > "$work/config.json" <<'JSON'
{"dim": 256, "n_layers": 10, "n_heads": 8, "n_kv_heads": 4, "vocab_size": 256,
 "multiple_of": 64, "n_future_tokens": 4, "max_seq_len": 256}
JSON
# Debian's OpenBLAS misdetects recent CPUs; PyTorch loads it too: use the core mtp picked
core=$(build/mtp bench matmul --threads 1 | head -n 1 | sed -n 's/.*core \([A-Za-z0-9]*\).*/\1/p' || true)
if [ ! -f "$work/run/model.safetensors" ]; then
    echo "== PyTorch twin: training $steps steps of 16 x 128 bytes (core ${core:-default})"
    $py tools/mtp_twin.py init --config "$work/config.json" --seed 1 --out "$work/init.safetensors"
    OPENBLAS_CORETYPE=${OPENBLAS_CORETYPE:-$core} $py tools/mtp_twin.py train \
        --model "$work/init.safetensors" --data "$work/data/train.bin" --batch 16 --seq 128 \
        --steps "$steps" --warmup 30 --lr 2e-3 --min-lr 2e-4 --threads "$(nproc)" \
        --out "$work/run" > "$work/train.log"
    awk 'NR % 50 == 0' "$work/train.log" | cut -c1-60
fi
build/mtp info "$work/run/model.safetensors"
build/mtp eval --model "$work/run/model.safetensors" --data "$work/data/val.bin" --batch 8 \
    --seq 128 --batches 16
for t in f32 bf16 q8; do
    echo "== mtp decoding the twin's model ($t)"
    build/mtp bench decode --model "$work/run/model.safetensors" --data "$work/data/val.bin" \
        --prompts 4 --prompt-len 64 -n 160 --repeat 5 --dtype "$t"
done
