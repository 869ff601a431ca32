#!/usr/bin/env bash
# Exact resume and atomic checkpoints:
# 1. a run stopped at step k and resumed to N ends with byte-identical files to a run
#    straight to N (shuffled data, cosine LR with warmup, gradient accumulation);
# 2. a training run killed (SIGKILL) at random moments while saving every step always
#    leaves a loadable latest model and a resumable state.
set -euo pipefail
M=${MTP_BUILD:-build}/mtp
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
pass=0 fail=0
ok() { echo "PASS $1"; pass=$((pass + 1)); }
ko() { echo "FAIL $1"; fail=$((fail + 1)); }

"$M" prepare --out "$tmp/data" src cli >/dev/null
cat > "$tmp/cfg.json" <<'JSON'
{"dim": 48, "n_layers": 4, "n_heads": 4, "n_kv_heads": 2, "vocab_size": 256,
 "multiple_of": 16, "n_future_tokens": 3, "max_seq_len": 64}
JSON
common=(--config "$tmp/cfg.json" --data "$tmp/data/train.bin" --batch 2 --seq 32 --steps 9
        --warmup 2 --lr 3e-3 --min-lr 1e-4 --seed 5 --threads 2 --quiet)

for variant in "plain" "accum" "naive"; do
    extra=()
    [ "$variant" = accum ] && extra=(--grad-accum 2)
    [ "$variant" = naive ] && extra=(--head-schedule naive --no-shuffle)
    "$M" train "${common[@]}" "${extra[@]}" --out "$tmp/straight-$variant"
    "$M" train "${common[@]}" "${extra[@]}" --stop-at 4 --out "$tmp/resumed-$variant"
    "$M" train --resume "$tmp/resumed-$variant" --quiet --threads 2
    if cmp -s "$tmp/straight-$variant/model.safetensors" "$tmp/resumed-$variant/model.safetensors" &&
       cmp -s "$tmp/straight-$variant/state.safetensors" "$tmp/resumed-$variant/state.safetensors"; then
        ok "resume $variant: stop at 4, resume to 9 == straight to 9 (byte-identical)"
    else
        ko "resume $variant: files differ"
    fi
done

# A larger model so that a save takes long enough to be interrupted.
cat > "$tmp/big.json" <<'JSON'
{"dim": 256, "n_layers": 4, "n_heads": 4, "vocab_size": 256, "multiple_of": 64,
 "n_future_tokens": 2, "max_seq_len": 64}
JSON
for i in 1 2 3 4 5 6; do
    run="$tmp/killed-$i"
    "$M" train --config "$tmp/big.json" --data "$tmp/data/train.bin" --batch 1 --seq 16 \
        --steps 100000 --save-every 1 --threads 1 --quiet --out "$run" &
    pid=$!
    sleep "0.$((RANDOM % 9 + 3))$i"
    kill -9 "$pid" 2>/dev/null || true
    wait "$pid" 2>/dev/null || true
    if [ ! -e "$run/model.safetensors" ]; then
        ok "kill $i: killed before the first save (nothing to load)"
    elif "$M" info "$run/model.safetensors" >/dev/null &&
         "$M" train --resume "$run" --steps 1 --quiet --threads 1 --out "$run-cont"; then
        ok "kill $i: latest model loads, state resumes"
    else
        ko "kill $i: latest checkpoint unreadable"
    fi
done
echo "$pass passed, $fail failed, 0 skipped"
[ "$fail" -eq 0 ]
