#!/usr/bin/env bash
# Exact resume and atomic checkpoints:
# 1. a run stopped at step k and resumed to N ends with byte-identical files to a run
#    straight to N (shuffled data, cosine LR with warmup, gradient accumulation);
# 2. metrics.jsonl after a resume holds each step exactly once, every line JSON, also
#    when the stopped run had written lines past its checkpoint and a torn last line;
# 3. a training run killed (SIGKILL) inside a save, at a point the test-only hook
#    MTP_TEST_STOP_IN_COMMIT makes certain (the temporary file complete, not renamed),
#    leaves a loadable latest model and a resumable state, for kills in the first and
#    later saves of the state and of the model.
set -euo pipefail
M=${MTP_BUILD:-build}/mtp
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
pass=0 fail=0 skipped=0
ok() { echo "PASS $1"; pass=$((pass + 1)); }
ko() { echo "FAIL $1"; fail=$((fail + 1)); }
# metrics_steps FILE FIRST LAST: every line is JSON and the training steps are FIRST..LAST,
# each once, in order (validation lines may sit between them)
metrics_steps() {
    /usr/bin/python3 - "$@" <<'PY'
import json, sys
path, first, last = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
try:
    lines = [json.loads(l, parse_constant=lambda c: 1 / 0) for l in open(path)]
except (ValueError, ZeroDivisionError) as e:
    sys.exit(f"{path}: a line is not JSON: {e}")
steps = [l["step"] for l in lines if "loss" in l]
if steps != list(range(first, last + 1)):
    sys.exit(f"{path}: training steps {steps}, expected {first}..{last}")
PY
}

"$M" prepare --out "$tmp/data" src cli >/dev/null
cat > "$tmp/cfg.json" <<'JSON'
{"dim": 48, "n_layers": 4, "n_heads": 4, "n_kv_heads": 2, "vocab_size": 256,
 "multiple_of": 16, "n_future_tokens": 3, "max_seq_len": 64}
JSON
common=(--config "$tmp/cfg.json" --data "$tmp/data/train.bin" --batch 2 --seq 32 --steps 9
        --warmup 2 --lr 3e-3 --min-lr 1e-4 --seed 5 --threads 2 --quiet)

variants=(plain accum naive bf16)
# bf16 products need AVX512-BF16 (a refused run says so)
if ! "$M" train "${common[@]}" --steps 1 --precision bf16 --out "$tmp/probe" 2>/dev/null; then
    echo "SKIP resume bf16: this CPU or build has no AVX512-BF16"
    skipped=1 variants=(plain accum naive)
fi
for variant in "${variants[@]}"; do
    extra=()
    [ "$variant" = bf16 ] && extra=(--precision bf16)
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
    if metrics_steps "$tmp/resumed-$variant/metrics.jsonl" 1 9; then
        ok "resume $variant: metrics.jsonl has steps 1..9 once each"
    else
        ko "resume $variant: metrics.jsonl"
    fi
done

if [ $skipped -eq 0 ]; then
    if cmp -s "$tmp/straight-plain/model.safetensors" "$tmp/straight-bf16/model.safetensors"; then
        ko "bf16: the same weights as f32 (were the products rounded?)"
    else
        ok "bf16: weights differ from f32's (the products are rounded)"
    fi
fi

# A resume without the schedule flags keeps the run's own: validation at the same steps as
# the run straight through (and at the stop, 4), saves at the same steps.
val_steps() { /usr/bin/python3 -c 'import json,sys; print([l["step"] for l in map(json.loads, open(sys.argv[1])) if "val_loss" in l])' "$1"; }
sched=(--val "$tmp/data/val.bin" --eval-every 3 --eval-batches 2 --save-every 2)
"$M" train "${common[@]}" "${sched[@]}" --out "$tmp/sched-straight"
"$M" train "${common[@]}" "${sched[@]}" --stop-at 4 --out "$tmp/sched-resumed"
"$M" train --resume "$tmp/sched-resumed" --quiet --threads 2
if [ "$(val_steps "$tmp/sched-straight/metrics.jsonl")" = "[3, 6, 9]" ] &&
   [ "$(val_steps "$tmp/sched-resumed/metrics.jsonl")" = "[3, 4, 6, 9]" ] &&
   cmp -s "$tmp/sched-straight/state.safetensors" "$tmp/sched-resumed/state.safetensors"; then
    ok "resume keeps --eval-every/--eval-batches/--save-every: validation at steps 3, (4,) 6, 9"
else
    ko "resume: validation steps $(val_steps "$tmp/sched-resumed/metrics.jsonl"), expected [3, 4, 6, 9]"
fi

# A run that wrote metrics past its checkpoint (step 4): a line of step 5 and a torn one,
# as a kill between a step's metrics line and its save leaves them.
"$M" train "${common[@]}" --stop-at 4 --out "$tmp/torn"
sed -n 4p "$tmp/torn/metrics.jsonl" | sed 's/"step":4/"step":5/' >> "$tmp/torn/metrics.jsonl"
printf '{"step":6,"loss":[5.1' >> "$tmp/torn/metrics.jsonl"
"$M" train --resume "$tmp/torn" --quiet --threads 2
if metrics_steps "$tmp/torn/metrics.jsonl" 1 9 &&
   cmp -s "$tmp/straight-plain/model.safetensors" "$tmp/torn/model.safetensors"; then
    ok "resume after lines past the checkpoint and a torn line: steps 1..9 once each"
else
    ko "resume after lines past the checkpoint and a torn line"
fi

# A larger model so that a save takes long enough to be interrupted.
cat > "$tmp/big.json" <<'JSON'
{"dim": 256, "n_layers": 4, "n_heads": 4, "vocab_size": 256, "multiple_of": 64,
 "n_future_tokens": 2, "max_seq_len": 64}
JSON
# Commits of a run saving every step: 1 state@1, 2 model@1, 3 state@2, 4 model@2, 5 state@3.
for n in 1 2 3 4 5; do
    run="$tmp/killed-$n"
    MTP_TEST_STOP_IN_COMMIT=$n "$M" train --config "$tmp/big.json" --data "$tmp/data/train.bin" \
        --batch 1 --seq 16 --steps 100000 --save-every 1 --threads 1 --quiet --out "$run" &
    pid=$!
    stopped=0
    for _ in $(seq 600); do # up to 60 s for the run to reach its n-th commit
        case $(ps -o stat= -p "$pid" 2>/dev/null) in T*) stopped=1; break ;; "") break ;; esac
        sleep 0.1
    done
    kill -9 "$pid" 2>/dev/null || true
    wait "$pid" 2>/dev/null || true
    tmpfile=$(ls "$run" | grep -c '\.tmp\.' || true)
    if [ "$stopped" != 1 ] || [ "$tmpfile" != 1 ]; then
        ko "kill $n: did not land inside a save (stopped $stopped, temporary files $tmpfile)"
        continue
    fi
    saved=$(( (n - 1) / 2 )) # complete checkpoints before the killed save
    if [ $n -le 2 ]; then
        if [ ! -e "$run/model.safetensors" ] && { [ $n -eq 1 ] || [ -e "$run/state.safetensors" ]; }; then
            ok "kill $n: killed inside the first save, no model yet"
        else
            ko "kill $n: a model file appeared from an unfinished save"
        fi
    elif "$M" info "$run/model.safetensors" >/dev/null &&
         "$M" train --resume "$run" --steps 1 --quiet --threads 1 &&
         metrics_steps "$run/metrics.jsonl" 1 $((n % 2 ? saved : saved + 1)); then
        ok "kill $n: killed inside a save; latest model loads, state resumes, metrics cut to it"
    else
        ko "kill $n: latest checkpoint unreadable or metrics not cut back"
    fi
done
echo "$pass passed, $fail failed, $skipped skipped"
[ "$fail" -eq 0 ]
