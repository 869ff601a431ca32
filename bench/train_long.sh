#!/usr/bin/env bash
# train_long.sh: training at long sequences, peak memory and tokens/s against T.
# `mtp bench train` on the benchmark model (dim 384, 6 layers, 6 heads of 64, hidden
# 1024, vocab 8192, 4 future heads, sequential) at batch 1 for T = 256, 1024, 2048, 4096
# (the same B throughout, so linear memory means 4x from T = 1024 to 4096), whole AdamW
# steps after a first untimed one. With a second binary (a build before the tiled
# attention, or any other) each T runs both, one after the other, and the table puts them
# side by side; a row it cannot run (memory) shows "-".
#   usage: bench/train_long.sh [MTP [BASELINE_MTP]]   (default build/mtp, no baseline)
#   env:   STEPS (default 3: 2 timed), THREADS (default 2), SEQS (default "256 1024 2048 4096")
# Runs under flock on $BENCH_LOCK when set, so that no two benchmarks overlap.
set -euo pipefail
cd "$(dirname "$0")/.."
NEW=${1:-build/mtp}
OLD=${2:-}
STEPS=${STEPS:-3}
THREADS=${THREADS:-2}
SEQS=${SEQS:-256 1024 2048 4096}

one() { # binary T -> "tok/s MiB" or "- -"
    local cmd=("$1" bench train --batch 1 --seq "$2" --steps "$STEPS" --threads "$THREADS")
    [ -n "${BENCH_LOCK:-}" ] && cmd=(flock "$BENCH_LOCK" "${cmd[@]}")
    "${cmd[@]}" 2>/dev/null | /usr/bin/python3 -c 'import json, sys
j = json.loads(sys.stdin.read())
print("%.0f %.0f" % (j["tok_per_s"], j["peak_rss_mb"]))' 2>/dev/null || echo "- -"
}

echo "dim 384, 6 layers, 6 heads, hidden 1024, vocab 8192, n=4 sequential, B 1, $THREADS threads, $((STEPS - 1)) timed steps after 1"
printf "%6s | %9s %9s" T "tok/s" "peak MiB"
[ -n "$OLD" ] && printf " | %9s %9s | %6s %6s" "base tok/s" "base MiB" speed mem
echo
declare -A mem
for T in $SEQS; do
    read -r tps mib < <(one "$NEW" "$T")
    mem[$T]=$mib
    printf "%6d | %9s %9s" "$T" "$tps" "$mib"
    if [ -n "$OLD" ]; then
        read -r otps omib < <(one "$OLD" "$T")
        /usr/bin/python3 -c 'import sys
a = sys.argv[1:]
r = lambda x, y: f"{float(x) / float(y):5.2f}x" if "-" not in (x, y) else "     -"
print(f" | {a[2]:>10} {a[3]:>8} | {r(a[0], a[2])} {r(a[1], a[3])}", end="")' "$tps" "$mib" "$otps" "$omib"
    fi
    echo
done
if [ -n "${mem[1024]:-}" ] && [ -n "${mem[4096]:-}" ] && [ "${mem[1024]}" != - ] && [ "${mem[4096]}" != - ]; then
    /usr/bin/python3 -c 'import sys; a, b = map(float, sys.argv[1:])
print(f"peak memory at T=4096: {b:.0f} MiB = {b / (4 * a):.2f} x (4 x the T=1024 figure, {4 * a:.0f} MiB); target <= 1.5")' \
        "${mem[1024]}" "${mem[4096]}"
fi
