#!/usr/bin/python3
"""test_vocab32.py: a vocab-70001 model on llm.c uint32 shards, mtp against the PyTorch
twin (tools/mtp_twin.py), the way tests/test_torch.py checks its vocab-67 model.

Run from the repo root (tests/test_vocab32.sh does):
    /usr/bin/python3 tests/test_vocab32.py --mtp build/mtp

In a temporary directory: 2048 tokens, most of them above 65535 (and the last id, 70000),
written as one uint32 shard and as three uint32 shards of the same stream; a tiny model
(dim 16, 1 trunk layer + 2 future heads, vocab 70001). Checks:
  1. `mtp eval --json`: per-future-head loss and accuracy against the twin, at init and
     after some torch training (accuracies far from 0);
  2. `mtp train` for 5 steps: every weight against torch.optim.AdamW;
  3. the three-shard stream as a comma list, as a glob and as a repeated --data: the
     same model, byte for byte, as the one shard (windows span shard boundaries);
  4. a glob run stopped at step 2 and resumed: the stored data list is the expanded
     paths, and the result equals the straight run byte for byte;
  5. a shard list with one bad shard is refused naming that shard;
  6. `mtp task --shard` and `mtp prepare` (small vocabularies) write uint16 shards.
Ends with `N passed, M failed` (tests/tally.py); exit 1 if M > 0.
"""

import json
import os
import subprocess
import sys
import tempfile

import numpy as np
import torch

from tally import Tally, mtp_binary

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "tools"))
import mtp_twin as twin  # noqa: E402

# Tolerances, each with its reason (the same reasoning as tests/test_torch.py's table).
TOL = {
    # fp32 forward, sums reordered (BLAS blocking); the softmax now runs over 70001 logits,
    # still a few ulps per op; a wrong id (a truncated uint32, say) gives rel ~ 1.
    "eval_loss": 1e-4,
    # top-1 accuracy: exact unless two logits tie within fp32 noise
    "eval_acc_flips": 1,
    # 5 AdamW steps: ||w_c - w_t|| <= ratio * ||w_t - w_0|| (Adam amplifies fp32 noise in
    # near-zero gradients to O(lr) for a few entries; any wrong batch or step is O(1))
    "train_ratio": 0.02,
}

CONFIG = dict(dim=16, n_layers=3, n_heads=2, n_kv_heads=1, vocab_size=70001, multiple_of=16,
              ffn_dim_multiplier=None, norm_eps=1e-5, rope_theta=10000.0, max_seq_len=32,
              n_future_tokens=2, hidden_dim=32)
B, T, EVAL_BATCHES, TRAIN_STEPS = 2, 16, 3, 5
HP = dict(lr=1e-2, min_lr=1e-3, schedule="cosine", warmup=2, weight_decay=0.1, grad_clip=1.0,
          beta1=0.9, beta2=0.95, eps=1e-8)

MTP = mtp_binary()
tally = Tally()


def check(ok, what, detail=""):
    """One line per check: `ok ...` here, or the detail here and tally's `FAIL ...`."""
    if ok:
        print(f"ok   {what}{'  ' + detail if detail else ''}", flush=True)
    elif detail:
        print(f"     {detail}", flush=True)
    tally.check(ok, f"{what}")
    return ok


def run(cmd, expect_ok=True):
    print("$ " + " ".join(cmd), flush=True)
    p = subprocess.run(cmd, capture_output=True, text=True, timeout=120,
                       env=dict(os.environ, OMP_NUM_THREADS="1"))
    if expect_ok and p.returncode != 0:
        print(f"  exit status {p.returncode}\n  stderr: {p.stderr.strip()[-2000:]}")
    return p


def make_tokens(n=2048, seed=0):
    """Motifs of high ids (so every head can learn) between random filler over the whole
    vocabulary; 90% of the ids are above 65535, and the largest id appears."""
    rng = np.random.default_rng(seed)
    motifs = [rng.integers(65536, 70001, size=rng.integers(4, 10)) for _ in range(6)]
    out = [np.array([70000, 65535, 65536, 0])]
    while sum(len(p) for p in out) < n:
        out.append(motifs[rng.integers(len(motifs))] if rng.random() < 0.7 else rng.integers(0, 70001, size=3))
    return np.concatenate(out)[:n].astype(np.int64)


def eval_json(model_path, data):
    p = run([MTP, "eval", "--model", model_path, "--data", data, "--batch", str(B), "--seq", str(T),
             "--batches", str(EVAL_BATCHES), "--threads", "1", "--json"])
    if p.returncode != 0:
        return None
    try:
        return json.loads(p.stdout.strip().splitlines()[-1])
    except (json.JSONDecodeError, IndexError):
        return None


def check_eval(label, model_path, shard, tokens):
    _, model = twin.load_model(model_path)
    loss_t, acc_t = twin.evaluate(model, tokens, B, T, EVAL_BATCHES)
    out = eval_json(model_path, shard)
    if not check(isinstance(out, dict) and len(out.get("head_loss", [])) == 2, f"[{label}] mtp eval --json"):
        return
    loss_c, acc_c = np.array(out["head_loss"]), np.array(out["head_acc"])
    print(f"  torch head_loss {np.round(loss_t, 5).tolist()} head_acc {np.round(acc_t, 4).tolist()}")
    print(f"  mtp   head_loss {np.round(loss_c, 5).tolist()} head_acc {np.round(acc_c, 4).tolist()}")
    rel = float(np.max(np.abs(loss_c - loss_t)) / np.max(np.abs(loss_t)))
    check(rel <= TOL["eval_loss"], f"[{label}] per-head loss", f"rel {rel:.3e} (tol {TOL['eval_loss']:g})")
    allowance = TOL["eval_acc_flips"] / (B * T * EVAL_BATCHES) + 1e-9
    worst = float(np.max(np.abs(acc_c - np.array(acc_t))))
    check(worst <= allowance, f"[{label}] per-head accuracy", f"max_abs {worst:.4f} (allowance {allowance:.4f})")
    return acc_t


def train_cmd(model_path, data_args, out_dir, extra=()):
    return [MTP, "train", "--model", model_path, *data_args, "--batch", str(B), "--seq", str(T),
            "--steps", str(TRAIN_STEPS), "--lr", repr(HP["lr"]), "--min-lr", repr(HP["min_lr"]),
            "--lr-schedule", HP["schedule"], "--warmup", str(HP["warmup"]),
            "--weight-decay", repr(HP["weight_decay"]), "--grad-clip", repr(HP["grad_clip"]),
            "--beta1", repr(HP["beta1"]), "--beta2", repr(HP["beta2"]), "--eps", repr(HP["eps"]),
            "--no-shuffle", "--threads", "1", "--quiet", "--out", out_dir, *extra]


def read_bytes(path):
    try:
        with open(path, "rb") as f:
            return f.read()
    except OSError:
        return None


def main():
    torch.set_num_threads(1)
    torch.set_default_dtype(torch.float32)
    with tempfile.TemporaryDirectory(prefix="mtp_test_vocab32_") as d:
        tokens = make_tokens()
        check(int(np.mean(tokens > 65535) * 100) >= 80 and tokens.max() == 70000, "fixture: ids above 65535")
        shard = os.path.join(d, "tokens.bin")
        twin.write_shard(shard, tokens, u32=True)
        check(np.array_equal(twin.read_shard(shard), tokens), "twin: uint32 shard round trip")
        parts = [os.path.join(d, f"part_{i}.bin") for i in range(3)]
        for p, chunk in zip(parts, np.split(tokens, [700, 1500])):  # 700 + 800 + 548 tokens
            twin.write_shard(p, chunk, u32=True)

        init = os.path.join(d, "init.safetensors")
        torch.manual_seed(7)
        model = twin.MTPModel(twin.Config.from_dict(CONFIG))
        twin.init_params(model, seed=7, std=0.02, norm_jitter=0.1)
        twin.save_safetensors(init, twin.model_tensors(model), {"format": "mtp", "config": json.dumps(CONFIG)})
        trained = os.path.join(d, "trained.safetensors")
        twin.train(model, tokens, batch=4, seq=T, steps=60, lr=2e-2, min_lr=1e-3, warmup=5)
        twin.save_model(trained, model)

        # 1. eval
        check_eval("init", init, shard, tokens)
        acc = check_eval("trained", trained, shard, tokens)
        check(acc is not None and min(acc) > 0.05, "trained model: accuracies far from 0", str(acc))

        # generation from ids above 65535 gives ids of the whole vocabulary back
        p = run([MTP, "generate", "--model", trained, "--prompt-tokens", "65536,69999,70000", "-n", "6",
                 "--spec", "block", "--json", "--threads", "1"])
        out = json.loads(p.stdout) if p.returncode == 0 and p.stdout.strip() else None
        check(out is not None and len(out["tokens"]) == 6 and max(out["tokens"]) < 70001,
              "mtp generate: a prompt of ids above 65535", str(out and out["tokens"]))

        # 2. train vs torch.optim.AdamW
        w0, _ = twin.load_safetensors(init)
        _, tm = twin.load_model(init)
        twin.train(tm, tokens, batch=B, seq=T, steps=TRAIN_STEPS, **HP)
        wt = twin.model_tensors(tm)
        one = os.path.join(d, "train_one")
        ok = check(run(train_cmd(init, ["--data", shard], one)).returncode == 0, "mtp train on the uint32 shard")
        if ok:
            wc, _ = twin.load_safetensors(os.path.join(one, "model.safetensors"))
            worst = ("", 0.0)
            for name, t in wt.items():
                c = wc.get(name)
                if c is None or c.shape != t.shape:
                    check(False, f"[train] {name} missing or wrong shape")
                    continue
                err = float(np.linalg.norm((c - t).astype(np.float64)))
                update = float(np.linalg.norm((t - w0[name]).astype(np.float64)))
                ratio = err / update if update > 0 else (0.0 if err <= 1e-7 else float("inf"))
                worst = max(worst, (name, ratio), key=lambda x: x[1])
                check(ratio <= TOL["train_ratio"], f"[train] {name}", f"ratio {ratio:.3e} (tol {TOL['train_ratio']:g})")
            print(f"[train] worst ratio {worst[1]:.3e} at {worst[0]}")
        ref = read_bytes(os.path.join(one, "model.safetensors"))

        # 3. the same stream as three shards
        glob = os.path.join(d, "part_*.bin")
        variants = {"comma list": ["--data", ",".join(parts)],
                    "glob": ["--data", glob],
                    "repeated --data": ["--data", parts[0], "--data", parts[1] + "," + parts[2]]}
        for name, args in variants.items():
            out = os.path.join(d, "train_" + name.replace(" ", "_").replace("-", ""))
            p = run(train_cmd(init, args, out))
            got = read_bytes(os.path.join(out, "model.safetensors"))
            check(p.returncode == 0 and ref is not None and got == ref,
                  f"three shards as a {name}: the same model as one shard, byte for byte")
        out = eval_json(trained, ",".join(parts))
        single = eval_json(trained, shard)
        check(out is not None and out == single, "mtp eval on the three-shard list == on the one shard")

        # 4. resume a glob run
        rdir = os.path.join(d, "resumed")
        p1 = run(train_cmd(init, ["--data", glob], rdir, ["--stop-at", "2"]))
        stored = None
        if p1.returncode == 0:
            _, meta = twin.load_safetensors(os.path.join(rdir, "state.safetensors"))
            stored = json.loads(meta.get("train", "{}")).get("data")
        check(stored == ",".join(parts), "state stores the expanded shard list", str(stored))
        p2 = run([MTP, "train", "--resume", rdir, "--threads", "1", "--quiet"])
        check(p2.returncode == 0 and read_bytes(os.path.join(rdir, "model.safetensors")) == ref,
              "stopped at step 2 and resumed: the straight run's model, byte for byte")

        # 5. a list with one bad shard
        bad = os.path.join(d, "bad.bin")
        bad_tokens = tokens.copy()
        bad_tokens[100] = 70001
        twin.write_shard(bad, bad_tokens, u32=True)
        p = run([MTP, "eval", "--model", init, "--data", f"{parts[0]},{bad},{parts[1]}", "--batches", "1",
                 "--seq", "8"], expect_ok=False)
        msg = p.stderr.strip()
        check(p.returncode == 1 and bad in msg and "70001" in msg and "position 100" in msg,
              "a list with one bad shard: refused, naming that shard, id and position", msg[-300:])

        # 6. the CLI's writers pick uint16 for small vocabularies
        task = os.path.join(d, "poly.bin")
        run([MTP, "task", "poly", "--shard", task, "--tokens", "500"])
        src = os.path.join(d, "src.txt")
        with open(src, "w") as f:
            f.write("int main(void) { return 0; }\n" * 50)
        run([MTP, "prepare", "--out", os.path.join(d, "prep"), src, "--val-fraction", "0"])
        for label, path in (("mtp task --shard", task), ("mtp prepare", os.path.join(d, "prep", "train.bin"))):
            raw = read_bytes(path) or b""
            head = np.frombuffer(raw[:12], dtype="<i4") if len(raw) >= 12 else [0, 0, 0]
            check(list(head[:2]) == [twin.SHARD_MAGIC, twin.SHARD_VERSION] and len(raw) == 1024 + 2 * head[2],
                  f"{label} writes a uint16 shard", str(list(head)))
    tally.finish()


if __name__ == "__main__":
    main()
