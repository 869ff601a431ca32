#!/usr/bin/env bash
# meta_7b.sh: the benchmark behind the README's figures for Meta's released 7B multi-token
# models (facebook/multi-token-prediction, 7B_*_4): convert the release's checkpoint and
# decode it, on random weights of exactly that shape.
#
#   bench/meta_7b.sh [--small] [--work DIR] [--tokenizer FILE] [--threads N] [-n TOKENS] [--keep]
#
# Steps:
#   1. bench/make_pth.py writes a random-weights folder in the release layout
#      (consolidated.pth + params.json) in fp32: Meta's 7B shape, dim 4096, n_layers 32,
#      n_future_tokens 4, vocab 32000 (27 GB; the script refuses with less than 60 GB free
#      under --work). --small: dim 256, n_layers 6, vocab 512, in seconds.
#   2. The folder needs a tokenizer.model at its root (as the release has); without
#      --tokenizer (e.g. Llama 2's own tokenizer.model) one is trained with spm_train on the
#      Python standard library at the model's vocabulary (tools/make_meta_fixture.py's
#      settings; minutes at 32000 pieces).
#   3. `mtp convert DIR OUT --dtype bf16` and `--dtype q8`, each under /usr/bin/time -v:
#      wall time and peak RSS (streamed conversion keeps one tensor in memory).
#   4. On each converted model, `mtp generate` from a fixed id prompt with --spec none,
#      block and tree (greedy, so all three must print the same ids; checked), printing
#      tok/s, tokens per forward and acceptance per drafted depth from --json; then
#      `mtp info` of each file.
# Random weights decode one arbitrary token after another, so acceptance here is not the
# trained model's: the figures that depend only on the shape are convert time and memory,
# and plain decoding's tok/s (memory bandwidth bound); speculative speed-ups need the real
# weights (run step 3-4 on the release folder: MTP_RELEASE=/path/to/7B_1T_4).
# Everything goes under --work (default: a new folder in /tmp), removed at the end unless --keep.
set -euo pipefail
cd "$(dirname "$0")/.."
MTP=${MTP:-build/mtp}
PY=/usr/bin/python3
small=0 work="" tokenizer="" threads=$(nproc) ntok=64 keep=0
while [ $# -gt 0 ]; do
    case $1 in
    --small) small=1 ;;
    --work) work=$2; shift ;;
    --tokenizer) tokenizer=$2; shift ;;
    --threads) threads=$2; shift ;;
    -n) ntok=$2; shift ;;
    --keep) keep=1 ;;
    -h | --help) sed -n '2,28p' "$0"; exit 0 ;;
    *) echo "meta_7b.sh: unknown argument '$1' (see --help)" >&2; exit 2 ;;
    esac
    shift
done
[ -x "$MTP" ] || { echo "meta_7b.sh: $MTP not built (run make)" >&2; exit 1; }
[ -x /usr/bin/time ] || { echo "meta_7b.sh: needs /usr/bin/time (apt-get install time)" >&2; exit 1; }
if [ $small = 1 ]; then
    dim=256 layers=6 nfut=4 vocab=512 heads=4 need_gb=1
else
    dim=4096 layers=32 nfut=4 vocab=32000 heads=32 need_gb=60
fi
if [ -z "$work" ]; then work=$(mktemp -d /tmp/meta_7b.XXXXXX); fi
mkdir -p "$work"
[ $keep = 1 ] || trap 'rm -rf "$work"' EXIT
free_gb=$(df -Pk "$work" | awk 'NR == 2 { print int($4 / 1048576) }')
if [ "$free_gb" -lt "$need_gb" ]; then
    echo "meta_7b.sh: $work has ${free_gb} GB free; this shape needs ${need_gb} GB (fp32 checkpoint + bf16 + q8)" >&2
    exit 1
fi

rel=$work/release
model=$rel/bench_${dim}_${layers}_${nfut}
if [ -n "${MTP_RELEASE:-}" ]; then
    model=$MTP_RELEASE # the real folder: no random weights, its tokenizer from its parent
    echo "== release folder $model"
else
    [ -f bench/make_pth.py ] || { echo "meta_7b.sh: bench/make_pth.py is missing" >&2; exit 1; }
    echo "== random fp32 checkpoint: dim $dim, n_layers $layers, n_future $nfut, vocab $vocab -> $model"
    mkdir -p "$rel"
    /usr/bin/time -f "   make_pth: %e s, peak RSS %M KB" \
        $PY bench/make_pth.py --dim $dim --n-layers $layers --n-heads $heads --n-future $nfut --vocab $vocab --dtype fp32 --out "$model"
    du -sh "$model"
    if [ ! -f "$rel/tokenizer.model" ] && [ ! -f "$model/tokenizer.model" ]; then
        if [ -n "$tokenizer" ]; then
            cp "$tokenizer" "$rel/tokenizer.model"
        else
            echo "== training a $vocab-piece tokenizer (spm_train)"
            $PY - "$rel/tokenizer.model" $vocab <<'EOF'
import glob, sys
sys.path.insert(0, "tools")
import make_meta_fixture as f
files = sorted(glob.glob("/usr/lib/python3.*/**/*.py", recursive=True))
budget = 600_000 if int(sys.argv[2]) <= 1000 else 40_000_000
texts, used = [], 0
for p in files:
    t = open(p, encoding="utf-8", errors="replace").read()
    if used + len(t) > budget:
        break
    texts.append(t)
    used += len(t)
f.train_tokenizer(texts, sys.argv[1], int(sys.argv[2]))
EOF
        fi
    fi
fi

tok_args=()
[ -n "$tokenizer" ] && tok_args=(--tokenizer "$tokenizer")
for t in bf16 q8; do
    out=$work/model_$t.safetensors
    echo "== mtp convert --dtype $t"
    /usr/bin/time -v "$MTP" convert "$model" "$out" --dtype $t "${tok_args[@]}" 2> "$work/time_$t.txt" >/dev/null ||
        { cat "$work/time_$t.txt" >&2; exit 1; }
    awk -F': ' '/Elapsed \(wall clock\)/ { printf "   wall %s", $2 } /Maximum resident/ { printf ", peak RSS %.0f MB\n", $2 / 1024 }' "$work/time_$t.txt"
    ls -l "$out" | awk '{ printf "   %.2f GB on disk\n", $5 / 1e9 }'
    "$MTP" info "$out" | sed 's/^/   /'
done

prompt=$($PY -c "import random; r = random.Random(7); print(','.join(['1'] + [str(r.randrange(3, $vocab)) for _ in range(31)]))")
for t in bf16 q8; do
    out=$work/model_$t.safetensors
    plain=""
    for spec in none block tree; do
        line=$("$MTP" generate --model "$out" --prompt-tokens "$prompt" -n "$ntok" --spec $spec --threads "$threads" --json --quiet | head -n 1)
        ids=$(printf '%s' "$line" | $PY -c "import json, sys; print(json.load(sys.stdin)['tokens'])")
        printf '%s' "$line" | $PY -c "import json, sys; j = json.load(sys.stdin)
print(f\"   $t --spec $spec: {j['tok_per_s']:.2f} tok/s, {j['tokens_per_forward']:.2f} tokens/forward, \"
      f\"accept {[round(a, 2) for a in j.get('accept', [])]}, ttft {j['ttft_s']:.2f} s\")"
        if [ -z "$plain" ]; then plain=$ids; elif [ "$ids" != "$plain" ]; then
            echo "meta_7b.sh: $t --spec $spec decoded other ids than --spec none" >&2; exit 1
        fi
    done
done
echo "== done (threads $threads, $ntok tokens, work folder $work$([ $keep = 1 ] && echo ", kept"))"
