#!/usr/bin/python3
"""test_torch.py: the whole C model against the PyTorch twin (tools/mtp_twin.py).

Run from the repo root (tests/test_torch.sh does):
    /usr/bin/python3 tests/test_torch.py --mtp build/mtp --dump build/tests/model_dump

Checks, on a tiny GQA model with 3 future heads, in a temporary directory:
  1. model_dump (batch 0, forward + backward, both head schedules): per-future-head
     logits and losses, and every parameter gradient, against torch autograd;
     and the sequential (paper's memory-efficient) schedule against the naive one.
  2. `mtp eval --json`: per-future-head mean loss and top-1 accuracy (also on a second
     config using Meta's FFN rule).
  3. `mtp train` for 5 steps (cosine+warmup+clip+wd, and constant lr without clipping):
     every weight after training against torch.optim.AdamW.
  4. Non-uniform head weights, a weight of 0 included (--head-weights 1,0.5,0 and 0,1,2):
     gradients of sum_i w_i * loss_i (both schedules, bit-identical to each other) and
     the weights after 5 `mtp train` steps.
Prints one line per tensor (max abs diff, relative error), the tensor name and worst
difference on failure, and ends with exactly `N passed, M failed, K skipped`; exit 1 if M > 0.
"""

import argparse
import json
import os
import subprocess
import sys
import tempfile

import numpy as np
import torch

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "tools"))
import mtp_twin as twin  # noqa: E402
from tally import Tally  # noqa: E402 (tests/, this script's folder)

# ---------------------------------------------------------------------------------------
# Tolerances: every one in this table, each with its reason. "rel" = max|c - t| / max|t|.
# ---------------------------------------------------------------------------------------
TOL = {
    # fp32 sums over dim/hidden/T reordered (BLAS blocking, threads): a few ulps per op,
    # compounded over ~10 ops deep; a wrong formula gives rel ~ 1.
    "logits": 1e-4,
    "loss": 1e-4,
    # Gradients go through more reordered sums (backward of every layer) and subtract
    # near-equal numbers (softmax, RMSNorm backward), so small entries lose relative
    # precision; measured against the tensor's largest entry.
    "grad": 1e-3,
    # Sequential vs naive schedule: the same math, only the order in which the future
    # heads' dL/dz (and output/norm grads) are summed may differ, so a few ulps of the
    # largest entry; any scheduling bug (a head dropped, counted twice) is O(1).
    "schedule": 1e-5,
    # mtp eval's mean CE: the same fp32 forward as "loss", averaged over K batches.
    "eval_loss": 1e-4,
    # Top-1 accuracy: exact unless two logits tie within fp32 noise; allow this many
    # flipped predictions per future head out of B*T*K.
    "eval_acc_flips": 1,
    # 5 AdamW steps: ||w_c - w_t|| <= ratio * ||w_t - w_0||. Adam divides by sqrt(v), so
    # fp32 noise in near-zero gradients is amplified to O(lr) for a few entries; 2% of
    # the whole update leaves room for that and still catches any wrong step or schedule.
    "train_ratio": 0.02,
}

B, T = 2, 16  # batch and sequence length for every check
LONG_T = 300  # one more gradient check at a length of several attention tiles
EVAL_BATCHES = 3
TRAIN_STEPS = 5

# The main config: GQA (4 attention heads over 2 kv heads), 3 future heads (trunk of
# 2 layers, layers.2 = future head 1, extra_heads.0..1), explicit hidden_dim.
CONFIG_GQA = dict(dim=64, n_layers=5, n_heads=4, n_kv_heads=2, vocab_size=67, multiple_of=16,
                  ffn_dim_multiplier=None, norm_eps=1e-5, rope_theta=10000.0, max_seq_len=64,
                  n_future_tokens=3, hidden_dim=96)
# Eval-only second config: plain MHA, 2 future heads, Meta's FFN rule with a multiplier
# (hidden = 32 * ceil(int(1.3 * int(2 * 192 / 3)) / 32) = 192), other rope_theta.
CONFIG_META_FFN = dict(dim=48, n_layers=3, n_heads=6, n_kv_heads=6, vocab_size=67, multiple_of=32,
                       ffn_dim_multiplier=1.3, norm_eps=1e-6, rope_theta=500000.0, max_seq_len=32,
                       n_future_tokens=2)

TRAIN_RUNS = {
    "cosine": dict(lr=1e-2, min_lr=1e-3, schedule="cosine", warmup=2, weight_decay=0.1, grad_clip=1.0),
    "constant": dict(lr=1e-2, min_lr=0.0, schedule="constant", warmup=0, weight_decay=0.1, grad_clip=0.0),
}
ADAM = dict(beta1=0.9, beta2=0.95, eps=1e-8)
# Loss weights per future head; 0 means the head must contribute no gradient at all.
HEAD_WEIGHTS = ([1.0, 0.5, 0.0], [0.0, 1.0, 2.0])


# ---------------------------------------------------------------------------------------
# Bookkeeping
# ---------------------------------------------------------------------------------------


class Results(Tally):
    def check(self, label: str, ok: bool, detail: str = "") -> bool:
        print(f"{'ok  ' if ok else 'FAIL'} {label}{'  ' + detail if detail else ''}", flush=True)
        return self.count(ok)


def rel_error(c: np.ndarray, t: np.ndarray) -> tuple:
    """(max|c - t|, max|c - t| / max|t|); relative error is the absolute one if t == 0."""
    diff = float(np.max(np.abs(c.astype(np.float64) - t.astype(np.float64)))) if t.size else 0.0
    scale = float(np.max(np.abs(t))) if t.size else 0.0
    return diff, diff / scale if scale > 0 else diff


def compare(res: Results, label: str, c: np.ndarray, t: np.ndarray, tol: float) -> bool:
    """Shape must match; relative error (of the tensor's max) must be <= tol."""
    if c is None:
        return res.check(label, False, "missing from the C output")
    if tuple(c.shape) != tuple(t.shape):
        return res.check(label, False, f"shape {tuple(c.shape)}, expected {tuple(t.shape)}")
    if not np.all(np.isfinite(c)):
        return res.check(label, False, "non-finite values")
    diff, rel = rel_error(c, t)
    return res.check(label, rel <= tol, f"max_abs {diff:.3e} rel {rel:.3e} (tol {tol:g})")


def run(cmd: list) -> subprocess.CompletedProcess:
    """Runs a C program; on failure prints its command, exit status and stderr."""
    print("$ " + " ".join(cmd), flush=True)
    try:
        p = subprocess.run(cmd, capture_output=True, text=True, timeout=120)
    except (OSError, subprocess.TimeoutExpired) as e:
        print(f"  could not run: {e}")
        return None
    if p.returncode != 0:
        print(f"  exit status {p.returncode}\n  stderr: {p.stderr.strip()[-2000:]}")
        return None
    return p


# ---------------------------------------------------------------------------------------
# Fixtures
# ---------------------------------------------------------------------------------------


def make_tokens(vocab: int, n_tokens: int = 4096, seed: int = 0) -> np.ndarray:
    """Random tokens with structure: a few fixed motifs repeated between random filler,
    so every future head has something to learn and losses are not all log(V)."""
    rng = np.random.default_rng(seed)
    motifs = [rng.integers(0, vocab, size=rng.integers(4, 12)) for _ in range(6)]
    out = []
    while sum(len(p) for p in out) < n_tokens:
        out.append(motifs[rng.integers(len(motifs))] if rng.random() < 0.7 else rng.integers(0, vocab, size=rng.integers(1, 6)))
    return np.concatenate(out)[:n_tokens].astype(np.int64)


def make_model(cfg_dict: dict, path: str, seed: int) -> twin.MTPModel:
    """Deterministic init (std 0.02 matrices, norm weights 1 + 0.1*N(0,1) so that
    norm-weight gradients are exercised), written with mtp metadata."""
    torch.manual_seed(seed)
    model = twin.MTPModel(twin.Config.from_dict(cfg_dict))
    twin.init_params(model, seed=seed, std=0.02, norm_jitter=0.1)
    # Write the config exactly as given (ffn_dim_multiplier: null; hidden_dim absent when unset).
    meta = {"format": "mtp", "config": json.dumps({k: v for k, v in cfg_dict.items()})}
    twin.save_safetensors(path, twin.model_tensors(model), meta)
    return model


def make_trained(init_path: str, path: str, tokens: np.ndarray, steps: int = 40) -> None:
    """The init model after some torch training, so that eval accuracies are far from 0
    and differ per future head (at init every head is near chance)."""
    _, model = twin.load_model(init_path)
    twin.train(model, tokens, batch=4, seq=T, steps=steps, lr=1e-2, min_lr=1e-3, warmup=5)
    twin.save_model(path, model)


# ---------------------------------------------------------------------------------------
# 1. model_dump: logits, losses, gradients
# ---------------------------------------------------------------------------------------


def check_dump(res: Results, args, d: str, model_path: str, shard: str, tokens: np.ndarray,
               head_weights=None, batch: int = B, seq: int = T) -> None:
    _, model = twin.load_model(model_path)
    n = model.cfg.n_future
    x, ys = twin.get_batch(tokens, 0, batch, seq, n)
    logits, losses, grads = twin.forward_backward(model, x, ys, head_weights)
    print(f"torch per-head loss, batch 0: {np.round(losses, 5).tolist()}")

    dumps = {}
    hw = ",".join(repr(w) for w in head_weights) if head_weights else None
    for schedule in ("sequential", "naive"):
        tag = (f"{schedule} w={hw}" if hw else schedule) + (f" B={batch} T={seq}" if (batch, seq) != (B, T) else "")
        out = os.path.join(d, f"dump_{schedule}.safetensors")
        cmd = [args.dump, model_path, shard, str(batch), str(seq), schedule, out] + ([hw] if hw else [])
        if not res.check(f"model_dump {tag} runs", run(cmd) is not None):
            continue
        c, _ = twin.load_safetensors(out)
        dumps[schedule] = c
        for i in range(1, n + 1):
            compare(res, f"[{tag}] logits.{i}", c.get(f"logits.{i}"), logits[i - 1], TOL["logits"])
        compare(res, f"[{tag}] loss", c.get("loss"), losses, TOL["loss"])
        for name, g in grads.items():
            if np.all(g == 0):  # a head of weight 0: its block's gradient must be exactly 0
                cg = c.get(f"grad.{name}")
                res.check(f"[{tag}] grad.{name} is 0", cg is not None and np.all(cg == 0),
                          "" if cg is None else f"max_abs {float(np.max(np.abs(cg))):.3e}")
                continue
            compare(res, f"[{tag}] grad.{name}", c.get(f"grad.{name}"), g, TOL["grad"])
        expected = {f"logits.{i}" for i in range(1, n + 1)} | {"loss"} | {f"grad.{k}" for k in grads}
        extra = sorted(set(c) - expected)
        res.check(f"[{tag}] no unexpected tensors", not extra, f"extra: {extra}" if extra else "")

    if len(dumps) == 2:
        worst = ("(all identical)", 0.0)
        for name, t in dumps["naive"].items():
            c = dumps["sequential"].get(name)
            if c is None or c.shape != t.shape:
                continue  # already reported above
            rel = rel_error(c, t)[1]
            if rel > worst[1]:
                worst = (name, rel)
        res.check(f"sequential == naive (every tensor){' w=' + hw if hw else ''} T={seq}", worst[1] <= TOL["schedule"],
                  f"worst {worst[0]} rel {worst[1]:.3e} (tol {TOL['schedule']:g})")


# ---------------------------------------------------------------------------------------
# 2. mtp eval --json
# ---------------------------------------------------------------------------------------


def parse_json_stdout(stdout: str):
    try:
        return json.loads(stdout)
    except json.JSONDecodeError:
        lines = [ln for ln in stdout.splitlines() if ln.strip().startswith("{")]
        return json.loads(lines[-1]) if lines else None


def check_eval(res: Results, args, label: str, model_path: str, shard: str, tokens: np.ndarray) -> None:
    _, model = twin.load_model(model_path)
    loss_t, acc_t = twin.evaluate(model, tokens, B, T, EVAL_BATCHES)
    p = run([args.mtp, "eval", "--model", model_path, "--data", shard, "--batch", str(B), "--seq", str(T),
             "--batches", str(EVAL_BATCHES), "--json"])
    if not res.check(f"[{label}] mtp eval runs", p is not None):
        return
    out = parse_json_stdout(p.stdout)
    if not res.check(f"[{label}] mtp eval prints JSON with head_loss, head_acc",
                     isinstance(out, dict) and "head_loss" in out and "head_acc" in out, p.stdout.strip()[-300:]):
        return
    n = model.cfg.n_future
    loss_c, acc_c = np.array(out["head_loss"], dtype=np.float64), np.array(out["head_acc"], dtype=np.float64)
    print(f"  torch head_loss {np.round(loss_t, 5).tolist()} head_acc {np.round(acc_t, 4).tolist()}")
    print(f"  mtp   head_loss {np.round(loss_c, 5).tolist()} head_acc {np.round(acc_c, 4).tolist()}")
    if not res.check(f"[{label}] eval has {n} future heads", loss_c.shape == (n,) and acc_c.shape == (n,)):
        return
    compare(res, f"[{label}] eval head_loss", loss_c, np.array(loss_t), TOL["eval_loss"])
    allowance = TOL["eval_acc_flips"] / (B * T * EVAL_BATCHES) + 1e-9
    worst = float(np.max(np.abs(acc_c - np.array(acc_t))))
    res.check(f"[{label}] eval head_acc", worst <= allowance, f"max_abs {worst:.4f} (allowance {allowance:.4f})")


# ---------------------------------------------------------------------------------------
# 3. mtp train vs torch.optim.AdamW
# ---------------------------------------------------------------------------------------


def check_train(res: Results, args, d: str, run_name: str, model_path: str, shard: str, tokens: np.ndarray,
                head_weights=None) -> None:
    h = TRAIN_RUNS[run_name]
    w0, _ = twin.load_safetensors(model_path)
    _, model = twin.load_model(model_path)
    twin.train(model, tokens, batch=B, seq=T, steps=TRAIN_STEPS, head_weights=head_weights, **h, **ADAM)
    wt = twin.model_tensors(model)

    hw = ",".join(repr(w) for w in head_weights) if head_weights else None
    if hw:
        run_name = f"{run_name} w={hw}"
    out_dir = os.path.join(d, f"train_{run_name.replace(' ', '_')}")
    cmd = [args.mtp, "train", "--model", model_path, "--data", shard, "--batch", str(B), "--seq", str(T),
           "--steps", str(TRAIN_STEPS), "--lr", repr(h["lr"]), "--min-lr", repr(h["min_lr"]),
           "--lr-schedule", h["schedule"], "--warmup", str(h["warmup"]), "--weight-decay", repr(h["weight_decay"]),
           "--grad-clip", repr(h["grad_clip"]), "--beta1", repr(ADAM["beta1"]), "--beta2", repr(ADAM["beta2"]),
           "--eps", repr(ADAM["eps"]), "--no-shuffle", "--threads", "1", "--out", out_dir]
    cmd += ["--head-weights", hw] if hw else []
    if not res.check(f"[train {run_name}] mtp train runs", run(cmd) is not None):
        return
    path = os.path.join(out_dir, "model.safetensors")
    if not res.check(f"[train {run_name}] wrote {os.path.basename(path)}", os.path.exists(path)):
        return
    wc, meta = twin.load_safetensors(path)
    res.check(f"[train {run_name}] metadata has format and config",
              meta.get("format") == "mtp" and "config" in meta, str(meta)[:200])

    worst = ("(all identical)", 0.0)
    for name, t in wt.items():
        c = wc.get(name)
        if c is None or c.shape != t.shape:
            res.check(f"[train {run_name}] {name}", False, "missing or wrong shape")
            continue
        err = float(np.linalg.norm((c - t).astype(np.float64)))
        update = float(np.linalg.norm((t - w0[name]).astype(np.float64)))
        ratio = err / update if update > 0 else (0.0 if err <= 1e-7 else float("inf"))
        if ratio > worst[1]:
            worst = (name, ratio)
        res.check(f"[train {run_name}] {name}", ratio <= TOL["train_ratio"],
                  f"|w_c-w_t| {err:.3e} |w_t-w_0| {update:.3e} ratio {ratio:.3e} (tol {TOL['train_ratio']:g})")
    print(f"[train {run_name}] worst ratio {worst[1]:.3e} at {worst[0]}")


# ---------------------------------------------------------------------------------------


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--mtp", default="build/mtp")
    ap.add_argument("--dump", default="build/tests/model_dump")
    args = ap.parse_args()
    torch.set_num_threads(1)
    torch.set_default_dtype(torch.float32)

    res = Results()
    for prog in (args.mtp, args.dump):
        res.check(f"{prog} exists", os.access(prog, os.X_OK))
    with tempfile.TemporaryDirectory(prefix="mtp_test_torch_") as d:
        shard = os.path.join(d, "tokens.bin")
        tokens = make_tokens(CONFIG_GQA["vocab_size"])
        twin.write_shard(shard, tokens)
        model_gqa = os.path.join(d, "init.safetensors")
        make_model(CONFIG_GQA, model_gqa, seed=1234)
        model_meta = os.path.join(d, "init_meta_ffn.safetensors")
        make_model(CONFIG_META_FFN, model_meta, seed=99)

        model_trained = os.path.join(d, "trained.safetensors")
        make_trained(model_gqa, model_trained, tokens)

        check_dump(res, args, d, model_gqa, shard, tokens)
        # attention in several tiles of 64 keys and a part tile: T = 300
        model_long = os.path.join(d, "init_long.safetensors")
        make_model(dict(CONFIG_GQA, max_seq_len=LONG_T), model_long, seed=7)
        check_dump(res, args, d, model_long, shard, tokens, batch=1, seq=LONG_T)
        check_eval(res, args, "gqa init", model_gqa, shard, tokens)
        check_eval(res, args, "gqa trained", model_trained, shard, tokens)
        check_eval(res, args, "meta-ffn", model_meta, shard, tokens)
        for run_name in TRAIN_RUNS:
            check_train(res, args, d, run_name, model_gqa, shard, tokens)
        for hw in HEAD_WEIGHTS:
            check_dump(res, args, d, model_gqa, shard, tokens, hw)
            check_train(res, args, d, "cosine", model_gqa, shard, tokens, hw)

    return res.summary()


if __name__ == "__main__":
    sys.exit(main())
