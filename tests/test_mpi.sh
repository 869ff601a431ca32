#!/usr/bin/env bash
# Training over many processes (mpirun, src/train/dist.c), on this one machine:
# 1. K = 2, 3, 4 ranks with --batch B against one process with --batch K*B (shuffled,
#    sequential, gradient accumulation, validation): the losses of every step agree to
#    float rounding and the final weights are close; every rank holds the same weights
#    after every step (MTP_TEST_DIST_CHECK=1 compares them); one rank under mpirun is the
#    one process bit for bit;
# 2. a rerun with the same K is byte-identical (model and state);
# 3. stopped at step 4 and resumed on the same K: byte-identical to a run straight to 9;
#    resumed on another K with the same global batch: trains on to step 9, close to the
#    straight run; another global batch: refused, naming --batch (or the ranks);
# 4. a rank killed (SIGKILL) mid-run ends the job within seconds with a non-zero status
#    and a message naming the rank, and the last checkpoint resumes;
# 5. a bad data file on one rank only: every rank stops, with that file's error printed
#    once; ranks started with different flags are refused;
# 6. two network namespaces as two hosts (TCP between them): the same bits as one host.
# Skipped (saying why) where mpirun is missing or mtp was built without MPI.
set -euo pipefail
M=${MTP_BUILD:-build}/mtp
pass=0 fail=0
ok() { echo "PASS $1"; pass=$((pass + 1)); }
ko() { echo "FAIL $1"; fail=$((fail + 1)); }
if ! command -v mpirun >/dev/null; then
    echo "SKIP mpirun not found (Debian: openmpi-bin)"; echo "0 passed, 0 failed, 1 skipped"; exit 0
fi
if ! ldd "$M" | grep libmpi >/dev/null; then
    echo "SKIP $M was built without MPI (no mpicc, or NO_MPI=1)"; echo "0 passed, 0 failed, 1 skipped"; exit 0
fi
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
# Open MPI refuses root without these; 2 cores run up to 4 ranks, one thread each. Open
# MPI leaks by design at its finalize: leak reports are off under the sanitizers.
export OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1 OMP_NUM_THREADS=1
export OMPI_MCA_btl=self,vader OMPI_MCA_rmaps_base_oversubscribe=1
export ASAN_OPTIONS=${ASAN_OPTIONS:+$ASAN_OPTIONS:}detect_leaks=0
mpi() { local k=$1; shift; MTP_TEST_DIST_CHECK=1 mpirun --oversubscribe -np "$k" "$M" "$@"; }
# same_run A B: the two run folders hold byte-identical model and state files
same_run() { cmp -s "$1/model.safetensors" "$2/model.safetensors" && cmp -s "$1/state.safetensors" "$2/state.safetensors"; }

# close A B [REL]: two runs trained the same steps, with training and validation losses
# (where both validated) that agree to REL, and the two model files' weights to 2e-3 (a handful of Adam steps at lr
# 3e-3 from the same start; a wrong batch split is off by far more)
close() {
    /usr/bin/python3 - "$@" <<'PY'
import json, struct, sys
import numpy as np
a, b = sys.argv[1], sys.argv[2]
rel = float(sys.argv[3]) if len(sys.argv) > 3 else 1e-5
def losses(d):
    return [(l["step"], "loss" in l, l.get("loss", l.get("val_loss"))) for l in map(json.loads, open(d + "/metrics.jsonl"))]
def weights(path):
    raw = open(path, "rb").read()
    (n,) = struct.unpack("<Q", raw[:8])
    h = json.loads(raw[8:8 + n]); h.pop("__metadata__", None)
    return {k: np.frombuffer(raw[8 + n + v["data_offsets"][0]:8 + n + v["data_offsets"][1]], "<f4")
            for k, v in h.items() if v["dtype"] == "F32"}
la, lb = dict((x[:2], x[2]) for x in losses(a)), dict((x[:2], x[2]) for x in losses(b))
train = lambda l: sorted(k for k in l if k[1])
if train(la) != train(lb):
    sys.exit(f"training steps differ: {train(la)} vs {train(lb)}")
worst = max(abs(x - y) / abs(y) for k in la if k in lb for x, y in zip(la[k], lb[k]))
if worst > rel:
    sys.exit(f"losses differ by {worst:.2e} relative (limit {rel:g})")
wa, wb = weights(a + "/model.safetensors"), weights(b + "/model.safetensors")
diff = max(float(np.max(np.abs(wa[k] - wb[k]))) for k in wa)
if diff > 2e-3:
    sys.exit(f"weights differ by {diff:.2e}")
print(f"  losses within {worst:.1e} relative, weights within {diff:.1e}")
PY
}

"$M" prepare --out "$tmp/data" src cli >/dev/null
cat > "$tmp/cfg.json" <<'JSON'
{"dim": 48, "n_layers": 4, "n_heads": 4, "n_kv_heads": 2, "vocab_size": 256,
 "multiple_of": 16, "n_future_tokens": 3, "max_seq_len": 64}
JSON
common=(--config "$tmp/cfg.json" --data "$tmp/data/train.bin" --val "$tmp/data/val.bin" --seq 32
        --steps 9 --warmup 2 --lr 3e-3 --min-lr 1e-4 --seed 5 --eval-every 3 --eval-batches 3
        --threads 1 --quiet)

# 1. K ranks x B rows against one process with K*B rows
for k in 2 3 4; do
    extra=()
    [ $k = 3 ] && extra=(--no-shuffle)
    [ $k = 4 ] && extra=(--grad-accum 2 --head-schedule naive)
    what="K=$k ${extra[*]:-shuffled}"
    "$M" train "${common[@]}" "${extra[@]}" --batch $((2 * k)) --out "$tmp/one-$k"
    if mpi $k train "${common[@]}" "${extra[@]}" --batch 2 --out "$tmp/mpi-$k" &&
       close "$tmp/mpi-$k" "$tmp/one-$k"; then
        ok "$what, --batch 2: the losses and weights of one process with --batch $((2 * k)), the same weights on every rank"
    else
        ko "$what, --batch 2 against one process with --batch $((2 * k))"
    fi
done
# Only rank 0 announces the backend (once, not once per rank).
mpi 2 train --config "$tmp/cfg.json" --data "$tmp/data/train.bin" --seq 32 --batch 1 --steps 1 \
    --threads 1 --out "$tmp/announce" 2> "$tmp/announce.err" >/dev/null || true
if [ "$(grep -c '^mtp: .*threads' "$tmp/announce.err")" = 1 ]; then
    ok "2 ranks: the backend announced once, by rank 0"
else
    ko "2 ranks: backend lines: $(grep -c '^mtp: .*threads' "$tmp/announce.err") (want 1)"
fi
mpi 1 train "${common[@]}" --batch 4 --out "$tmp/mpi-1"
if cmp -s "$tmp/mpi-1/model.safetensors" "$tmp/one-2/model.safetensors"; then
    ok "one rank under mpirun == one process (byte-identical model)"
else
    ko "one rank under mpirun differs from one process"
fi

# 2. a rerun is byte-identical
mpi 2 train "${common[@]}" --batch 2 --out "$tmp/rerun-2"
if same_run "$tmp/rerun-2" "$tmp/mpi-2"; then
    ok "K=2 rerun: byte-identical model and state"
else
    ko "K=2 rerun: files differ"
fi

# 3. resume: the same K exactly, another K with the same global batch, and refusals
mpi 2 train "${common[@]}" --batch 2 --stop-at 4 --out "$tmp/resumed-2"
mpi 2 train --resume "$tmp/resumed-2" --quiet --threads 1
if same_run "$tmp/resumed-2" "$tmp/mpi-2"; then
    ok "K=2 stopped at 4, resumed on K=2 to 9 == straight to 9 (byte-identical)"
else
    ko "K=2 resume on K=2: files differ"
fi
mpi 2 train "${common[@]}" --batch 2 --stop-at 4 --out "$tmp/stop-2"
for to in "4 1" "1 4"; do
    set -- $to
    cp -r "$tmp/stop-2" "$tmp/to-$1"
    if mpi $1 train --resume "$tmp/to-$1" --batch $2 --eval-every 3 --eval-batches 3 --quiet --threads 1 &&
       close "$tmp/to-$1" "$tmp/mpi-2"; then
        ok "K=2 --batch 2 stopped at 4, resumed on K=$1 --batch $2: the straight run's losses and weights"
    else
        ko "K=2 resumed on K=$1 --batch $2"
    fi
done
sum=$(cksum < "$tmp/stop-2/state.safetensors")
if ! mpi 2 train --resume "$tmp/stop-2" --batch 1 --quiet --threads 1 2> "$tmp/err" &&
   [ "$(grep -c "mtp train: .*global batch .* resume with --batch 2$" "$tmp/err")" = 1 ] &&
   ! mpi 3 train --resume "$tmp/stop-2" --quiet --threads 1 2> "$tmp/err3" &&
   grep -q "does not split over 3 ranks" "$tmp/err3" &&
   [ "$(cksum < "$tmp/stop-2/state.safetensors")" = "$sum" ]; then
    ok "resume with another global batch refused: '$(grep -m1 'global batch' "$tmp/err")'"
else
    ko "resume with another global batch: $(cat "$tmp/err" "$tmp/err3" | head -3)"
fi

# 3b. fine-tuning with frozen parts: each rank keeps the moments of the trained tensors in
#     its slice only (slices cut across frozen and trained tensors); K=3 against one
#     process, resumed on K=3 bit-exact and on K=1 close
ft=(--model "$tmp/one-2/model.safetensors" --n-future 2 --freeze trunk,output --data "$tmp/data/train.bin"
    --val "$tmp/data/val.bin" --seq 32 --steps 6 --warmup 2 --lr 3e-3 --seed 5 --eval-every 3 --eval-batches 3
    --threads 1 --quiet)
"$M" train "${ft[@]}" --batch 6 --out "$tmp/ft-one"
mpi 3 train "${ft[@]}" --batch 2 --out "$tmp/ft-3"
mpi 3 train "${ft[@]}" --batch 2 --stop-at 3 --out "$tmp/ft-3r"
cp -r "$tmp/ft-3r" "$tmp/ft-1r"
mpi 3 train --resume "$tmp/ft-3r" --eval-every 3 --eval-batches 3 --quiet --threads 1
"$M" train --resume "$tmp/ft-1r" --batch 6 --eval-every 3 --eval-batches 3 --quiet --threads 1
if close "$tmp/ft-3" "$tmp/ft-one" && cmp -s "$tmp/ft-3r/state.safetensors" "$tmp/ft-3/state.safetensors" &&
   close "$tmp/ft-1r" "$tmp/ft-one"; then
    ok "--n-future 2 --freeze trunk,output on K=3 == one process; resumed on K=3 byte-identical, on K=1 close"
else
    ko "fine-tuning with frozen parts over MPI"
fi

# 4. a rank killed mid-run
cat > "$tmp/big.json" <<'JSON'
{"dim": 128, "n_layers": 2, "n_heads": 4, "vocab_size": 256, "multiple_of": 64,
 "n_future_tokens": 2, "max_seq_len": 64}
JSON
MTP_TEST_DIST_CHECK=1 mpirun --oversubscribe -np 2 "$M" train --config "$tmp/big.json" \
    --data "$tmp/data/train.bin" --batch 1 --seq 16 --steps 100000 --save-every 2 --threads 1 \
    --quiet --out "$tmp/killed" 2> "$tmp/killed.err" &
job=$!
for _ in $(seq 300); do # up to 30 s for the first checkpoint
    [ -e "$tmp/killed/state.safetensors" ] && break
    sleep 0.1
done
rank=$(pgrep -P $job | tail -n 1)
sleep 0.5
t0=$(date +%s%N)
kill -9 "$rank" 2>/dev/null || true
rc=0
wait $job || rc=$?
ms=$(( ($(date +%s%N) - t0) / 1000000 ))
if [ -n "$rank" ] && [ $rc -ne 0 ] && [ $ms -lt 10000 ] &&
   grep -q "rank 1 .*signal 9\|rank 1 .*Killed" "$tmp/killed.err" &&
   "$M" info "$tmp/killed/model.safetensors" >/dev/null &&
   mpi 2 train --resume "$tmp/killed" --steps 1 --quiet --threads 1; then
    ok "a rank killed: the job ended in ${ms} ms with status $rc, naming rank 1; the last checkpoint resumes"
else
    ko "a rank killed (pid '$rank'): status $rc after ${ms} ms: $(head -c 600 "$tmp/killed.err")"
fi

# 5. a bad file on one rank only; ranks with different flags
printf 'not a shard' > "$tmp/bad.bin"
one=(train --config "$tmp/cfg.json" --seq 32 --steps 2 --batch 2 --threads 1 --quiet --out "$tmp/badrun")
rc=0
timeout 60 mpirun --oversubscribe -np 1 "$M" "${one[@]}" --data "$tmp/data/train.bin" : \
    -np 1 "$M" "${one[@]}" --data "$tmp/bad.bin" 2> "$tmp/bad.err" || rc=$?
if [ $rc -ne 0 ] && [ $rc -ne 124 ] && [ "$(grep -c "mtp train: $tmp/bad.bin" "$tmp/bad.err")" = 1 ]; then
    ok "a bad data file on rank 1 only: every rank stops (status $rc), the file's error printed once"
else
    ko "a bad data file on rank 1: status $rc: $(head -c 600 "$tmp/bad.err")"
fi
rc=0
timeout 60 mpirun --oversubscribe -np 1 "$M" "${one[@]}" --data "$tmp/data/train.bin" : \
    -np 1 "$M" "${one[@]}" --data "$tmp/data/train.bin" --lr 1e-2 2> "$tmp/flags.err" || rc=$?
if [ $rc -ne 0 ] && [ $rc -ne 124 ] && grep -q "rank 1 was started with .* other training options" "$tmp/flags.err"; then
    ok "ranks started with different flags refused: '$(grep -m1 'rank 1' "$tmp/flags.err")'"
else
    ko "ranks with different flags: status $rc: $(head -c 600 "$tmp/flags.err")"
fi
# 6. two hosts: two network namespaces (each with its own host name) joined by a veth
#    pair; mpirun starts the second's rank through its rsh agent, and the ranks talk TCP.
#    The same bits as two ranks on one host. Needs root and ip netns (else skipped).
skip=0
ns=mtp$$
if [ "$(id -u)" = 0 ] && command -v ip >/dev/null && command -v unshare >/dev/null &&
   ip netns add ${ns}a 2>/dev/null; then
    trap 'ip netns del ${ns}a 2>/dev/null; ip netns del ${ns}b 2>/dev/null; rm -rf "$tmp"' EXIT
    ip netns add ${ns}b
    ip link add ${ns}va type veth peer name ${ns}vb
    for x in a b; do
        ip link set ${ns}v$x netns $ns$x
        ip -n $ns$x addr add 10.77.0.$([ $x = a ] && echo 1 || echo 2)/24 dev ${ns}v$x
        ip -n $ns$x link set ${ns}v$x up
        ip -n $ns$x link set lo up
    done
    # the agent: HOST COMMAND runs COMMAND in the namespace that plays HOST
    printf '%s\n' '#!/bin/sh' 'host=$1; shift' 'case $host in 10.77.0.1) x=a ;; *) x=b ;; esac' \
        "exec ip netns exec $ns\$x unshare --uts sh -c \"hostname host\$x; \$*\"" > "$tmp/agent.sh"
    chmod +x "$tmp/agent.sh"
    rc=0
    timeout 120 ip netns exec ${ns}a unshare --uts sh -c 'hostname hosta; exec "$@"' - \
        mpirun --mca plm_rsh_agent "$tmp/agent.sh" --host 10.77.0.1:1,10.77.0.2:1 -np 2 \
        --mca btl self,tcp --mca btl_tcp_if_include 10.77.0.0/24 --mca oob_tcp_if_include 10.77.0.0/24 \
        -x OMP_NUM_THREADS=1 -x MTP_TEST_DIST_CHECK=1 \
        sh -c 'hostname >> "$0"; exec "$@"' "$tmp/hosts" "$M" train "${common[@]}" --batch 2 \
        --out "$tmp/hosts-2" 2> "$tmp/hosts.err" || rc=$?
    if [ $rc = 0 ] && [ "$(sort "$tmp/hosts" | tr '\n' ' ')" = "hosta hostb " ] &&
       cmp -s "$tmp/hosts-2/model.safetensors" "$tmp/mpi-2/model.safetensors"; then
        ok "two hosts (network namespaces hosta, hostb; TCP): byte-identical to two ranks on one host"
    else
        ko "two hosts (network namespaces): status $rc: $(head -c 600 "$tmp/hosts.err")"
    fi
else
    echo "SKIP two hosts: needs root and ip netns"
    skip=1
fi
echo "$pass passed, $fail failed, $skip skipped"
[ "$fail" -eq 0 ]
