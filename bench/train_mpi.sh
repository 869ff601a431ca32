#!/usr/bin/env bash
# Training on K = 1, 2, 4 processes (mpirun) with the same global batch, on `mtp bench
# train`'s model (dim 384, 6 layers, 6 attention heads, hidden 1024, vocab 8192, 4 future
# heads, T 256, 8 rows per step: --batch 8/K per rank):
# tokens/s, peak RSS of each rank (/usr/bin/time), bytes each rank sends per step and the
# share of a step spent in exchanges (metrics.jsonl's wait_s over the step's time).
# Threads: K ranks x 2/K threads (K = 4: one each, so 4 threads on a 2-core machine).
# On a machine of few cores this shows the overhead of the exchanges, not scaling.
#   bash bench/train_mpi.sh [STEPS]      (run alone: flock a lock around it on a shared box)
set -euo pipefail
M=${MTP:-build/mtp}
steps=${1:-6}
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
export OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1 OMPI_MCA_btl=self,vader
"$M" prepare --out "$tmp/data" src cli >/dev/null
cat > "$tmp/cfg.json" <<'JSON'
{"dim": 384, "n_layers": 6, "n_heads": 6, "vocab_size": 8192, "hidden_dim": 1024,
 "multiple_of": 256, "n_future_tokens": 4, "max_seq_len": 256}
JSON
cores=$(nproc)
echo "global batch 8 x 256 tokens, $steps steps (the first untimed), $cores cores"
printf '%-3s %-8s %-9s %-10s %-22s %-16s %s\n' K threads "tok/s" "step ms" "peak RSS per rank MB" "sent/step MB" "waiting"
for k in 1 2 4; do
    th=$(( cores / k )); [ $th -lt 1 ] && th=1
    out="$tmp/run-$k"
    OMP_NUM_THREADS=$th mpirun --oversubscribe --bind-to none -np $k /usr/bin/time -f "rss %M" \
        "$M" train --config "$tmp/cfg.json" --data "$tmp/data/train.bin" --batch $((8 / k)) \
        --seq 256 --steps "$steps" --warmup 1 --threads $th --quiet --out "$out" 2> "$tmp/err-$k" ||
        { cat "$tmp/err-$k"; exit 1; }
    rss=$(grep '^rss ' "$tmp/err-$k" | awk '{printf "%s%.0f", (NR > 1 ? " " : ""), $2 / 1024}')
    /usr/bin/python3 - "$out/metrics.jsonl" "$k" "$th" "$rss" <<'PY'
import json, sys
lines = [l for l in map(json.loads, open(sys.argv[1])) if "loss" in l]
k, th, rss = sys.argv[2], sys.argv[3], sys.argv[4]
timed = lines[1:]  # the first step warms up
span = timed[-1]["elapsed_s"] - lines[0]["elapsed_s"]
tok = 8 * 256 * len(timed) / span
wait = sum(l.get("wait_s", 0) for l in timed)
sent = sum(l.get("sent_bytes", 0) for l in timed) / len(timed) / 1e6
print(f"{k:<3} {th:<8} {tok:<9.0f} {span / len(timed) * 1e3:<10.0f} {rss:<22} {sent:<16.1f} {100 * wait / span:.0f}%")
PY
done
