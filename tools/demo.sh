#!/usr/bin/env bash
# The main job: install what is missing, build, then train a small byte-level model with
# 4 future heads on a code corpus found on this machine (the Python standard library if
# installed, else mtp's own sources), report each head's validation loss and accuracy,
# then decode the same continuation with and without self-speculation and compare speeds.
# Usage: tools/demo.sh [WORKDIR]     (default: demo/; MTP_DEMO_STEPS overrides the length)
set -euo pipefail
cd "$(dirname "$0")/.."
tools/install_deps.sh
make -s -j"$(nproc)"
work=${1:-demo}
steps=${MTP_DEMO_STEPS:-600}
mkdir -p "$work"

corpus=$(ls -d /usr/lib/python3.[0-9]* 2>/dev/null | sort -V | tail -n 1 || true)
[ -n "$corpus" ] || corpus="src cli tests tools"
echo "== corpus: $corpus"
build/mtp prepare --out "$work/data" --max-mb 24 $corpus

cat > "$work/config.json" <<'JSON'
{"dim": 256, "n_layers": 10, "n_heads": 8, "n_kv_heads": 4, "vocab_size": 256,
 "multiple_of": 64, "n_future_tokens": 4, "max_seq_len": 256}
JSON
echo "== training a byte-level model with 4 future heads ($steps steps)"
build/mtp train --config "$work/config.json" --data "$work/data/train.bin" \
    --val "$work/data/val.bin" --batch 16 --seq 128 --steps "$steps" --warmup 100 \
    --lr 2e-3 --min-lr 2e-4 --eval-every 200 --save-every 200 --out "$work/run"
build/mtp info "$work/run/model.safetensors"
echo "== validation: loss and accuracy of each future head (head i predicts byte t+i)"
build/mtp eval --model "$work/run/model.safetensors" --data "$work/data/val.bin" \
    --batch 8 --seq 128 --batches 16

prompt=$'import os\nimport sys\n\n\ndef main(argv):\n    '
for spec in none block tree; do
    echo "== greedy continuation, --spec $spec"
    build/mtp generate --model "$work/run/model.safetensors" --prompt "$prompt" -n 200 --spec $spec
done
echo "== decoding speed: plain vs self-speculative (outputs checked identical)"
build/mtp bench decode --model "$work/run/model.safetensors" --data "$work/data/val.bin" \
    --prompts 4 --prompt-len 64 -n 160
for t in bf16 q8; do # half and a quarter of the bytes; kernels for this CPU, named in the header
    echo "== the same with $t weights (--dtype $t: packed once at load)"
    build/mtp bench decode --model "$work/run/model.safetensors" --data "$work/data/val.bin" \
        --prompts 4 --prompt-len 64 -n 160 --dtype $t
done
# Without AMX every verified row costs its own arithmetic on this in-cache model, so drafting
# one token (2-row passes) can beat drafting three; with AMX, 16 rows cost about one
echo "== bf16, block and tree drafting one token (--draft 2: head 1 and head 2)"
build/mtp bench decode --model "$work/run/model.safetensors" --data "$work/data/val.bin" \
    --prompts 4 --prompt-len 64 -n 160 --dtype bf16 --draft 2
