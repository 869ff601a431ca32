#!/usr/bin/env bash
# serve_load.sh: throughput and latency of mtp serve at 1, 4 and 16 clients, --spec none
# against --spec auto, on loopback (bench/serve_load.mjs is the client).
#   bench/serve_load.sh MODEL [SECONDS per level = 10] [MAX_TOKENS = 64] [THREADS = all]
set -euo pipefail
cd "$(dirname "$0")/.."
model=$1 secs=${2:-10} n=${3:-64} threads=${4:-0}
for spec in none auto; do
    log=$(mktemp)
    args=(--model "$model" --port 0 --parallel 16 --spec "$spec")
    [ "$threads" != 0 ] && args+=(--threads "$threads")
    build/mtp serve "${args[@]}" 2>"$log" &
    pid=$!
    for _ in $(seq 100); do grep -q listening "$log" && break; sleep 0.1; done
    port=$(grep -o '127.0.0.1:[0-9]*' "$log" | cut -d: -f2)
    echo "--spec $spec"
    node bench/serve_load.mjs "http://127.0.0.1:$port" "$secs" "$n"
    kill -TERM "$pid"
    wait "$pid"
    rm -f "$log"
done
