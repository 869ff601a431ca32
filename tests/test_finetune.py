#!/usr/bin/python3
"""test_finetune.py: fine-tuning with `mtp train --model M --n-future K --freeze PARTS`
against the PyTorch twin (tools/mtp_twin.py: keep_heads, freeze_parts, AdamW over the rest).

Run from the repo root (tests/test_finetune.sh does):
    /usr/bin/python3 tests/test_finetune.py --mtp build/mtp

On a tiny GQA model with 4 future heads (2 trunk layers, Meta's FFN rule), 5 AdamW steps
each (warmup + cosine, weight decay, clipping that is active):
  1. --n-future 1, 2 and 4 (the paper's n' = 1 and n' = 4): every step's per-head losses
     and every final weight against the twin; the written model has K heads and loads in
     the twin, in Meta's layout (tools/meta_model.py, strict) and in mtp eval (losses
     against the twin), info and generate (greedy ids against meta_model's).
  2. --freeze trunk / heads / embeddings,output / trunk,heads,embeddings (and with
     --n-future 1): frozen tensors bit-identical to the start, trained ones against the
     twin; the naive head schedule writes the byte-identical model; the state has
     adam_m/adam_v for the trained tensors only, and records the frozen parts.
  3. Runs stopped at step 3 and resumed to 6 end byte-identical to runs straight to 6
     (--n-future 1 --freeze trunk, shuffled; --freeze embeddings,output, naive heads).
  4. Bad flags: exit status 2 and a message naming the flag.
Ends with exactly `N passed, M failed, K skipped`; exit 1 if M > 0.
"""

import argparse
import json
import os
import subprocess
import sys
import tempfile

import numpy as np
import torch

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, "..", "tools"))
import meta_model  # noqa: E402
import mtp_twin as twin  # noqa: E402
from test_torch import TOL, Results, compare, make_model, make_tokens, run  # noqa: E402

B, T = 2, 16
STEPS = 5
# Clipping at 0.5 is active at every step here (the gradient norms are 1 to 12), so the
# norm's cover (trained tensors only) matters.
HP = dict(lr=1e-2, min_lr=1e-3, schedule="cosine", warmup=2, weight_decay=0.1, grad_clip=0.5,
          beta1=0.9, beta2=0.95, eps=1e-8)
# 4 future heads on a trunk of 2 layers; hidden_dim from Meta's rule (128), so the file's
# config is Meta's params.json plus keys Meta's loader ignores once dropped.
CONFIG = dict(dim=48, n_layers=6, n_heads=4, n_kv_heads=2, vocab_size=67, multiple_of=16,
              ffn_dim_multiplier=None, norm_eps=1e-5, rope_theta=10000.0, max_seq_len=64,
              n_future_tokens=4)
# Per-step losses: the first step's is the same fp32 forward as test_torch's "loss"; later
# steps follow weights that already differ by the fp32 noise AdamW amplifies (the
# weights' bar is 2% of the update), which moves a loss by far less than 1e-3 of itself.
LOSS_TOL = 1e-4


def mtp_train_cmd(args, model, shard, out, extra=()):
    return [args.mtp, "train", "--model", model, "--data", shard, "--batch", str(B), "--seq", str(T),
            "--steps", str(STEPS), "--lr", repr(HP["lr"]), "--min-lr", repr(HP["min_lr"]),
            "--lr-schedule", HP["schedule"], "--warmup", str(HP["warmup"]),
            "--weight-decay", repr(HP["weight_decay"]), "--grad-clip", repr(HP["grad_clip"]),
            "--beta1", repr(HP["beta1"]), "--beta2", repr(HP["beta2"]), "--eps", repr(HP["eps"]),
            "--no-shuffle", "--threads", "1", "--quiet", "--out", out] + list(extra)


def twin_finetune(model_path, tokens, keep=None, freeze=()):
    """The twin's run: (start weights, final weights, per-step per-head losses, config)."""
    _, model = twin.load_model(model_path)
    if keep:
        model = twin.keep_heads(model, keep)
    w0 = twin.model_tensors(model)
    twin.freeze_parts(model, freeze)
    heads = []
    twin.train(model, tokens, batch=B, seq=T, steps=STEPS, head_history=heads, **HP)
    return w0, twin.model_tensors(model), heads, model.cfg


def metrics(out_dir):
    with open(os.path.join(out_dir, "metrics.jsonl")) as f:
        return [json.loads(line) for line in f if '"loss"' in line]


def check_run(res, tag, out_dir, cfg, w0, wt, heads, freeze=()):
    """mtp's run in out_dir against the twin's: config, losses, frozen and trained weights."""
    path = os.path.join(out_dir, "model.safetensors")
    if not res.check(f"[{tag}] wrote model.safetensors", os.path.exists(path)):
        return None
    wc, meta = twin.load_safetensors(path)
    got = json.loads(meta.get("config", "{}"))
    res.check(f"[{tag}] config has n_future_tokens {cfg.n_future}, n_layers {cfg.n_layers}",
              got.get("n_future_tokens") == cfg.n_future and got.get("n_layers") == cfg.n_layers, str(got))
    res.check(f"[{tag}] tensors are the twin's names", set(wc) == set(wt),
              f"extra {sorted(set(wc) - set(wt))[:3]} missing {sorted(set(wt) - set(wc))[:3]}")
    lines = metrics(out_dir)
    gnorms = [ln.get("grad_norm") for ln in lines]
    res.check(f"[{tag}] clipping active at every step", all(g and g > HP["grad_clip"] for g in gnorms), str(gnorms))
    lc = np.array([ln["loss"] for ln in lines], dtype=np.float64)
    compare(res, f"[{tag}] per-step per-head losses", lc, np.array(heads, dtype=np.float64), LOSS_TOL)
    worst = ("(none)", 0.0)
    for name, t in wt.items():
        c = wc.get(name)
        if c is None or c.shape != t.shape:
            continue
        if twin.part_of(cfg, name) in freeze:
            res.check(f"[{tag}] frozen {name} bit-identical to the start", np.array_equal(c, w0[name]))
            continue
        err = float(np.linalg.norm((c - t).astype(np.float64)))
        update = float(np.linalg.norm((t - w0[name]).astype(np.float64)))
        ratio = err / update if update > 0 else float("inf")
        worst = max(worst, (name, ratio), key=lambda x: x[1])
        res.check(f"[{tag}] {name}", ratio <= TOL["train_ratio"],
                  f"|w_c-w_t| {err:.3e} |w_t-w_0| {update:.3e} ratio {ratio:.3e} (tol {TOL['train_ratio']:g})")
    print(f"[{tag}] worst ratio {worst[1]:.3e} at {worst[0]}")
    return path


def check_loads_anywhere(res, args, tag, path, shard, tokens):
    """The fine-tuned file in the twin and Meta's layout, and in mtp eval, info, generate."""
    cfg, model = twin.load_model(path)  # strict: every name of the K-head model, nothing else
    tensors, meta = twin.load_safetensors(path)
    params = {k: v for k, v in json.loads(meta["config"]).items() if k != "hidden_dim"}
    margs = meta_model.ModelArgs.from_params(params)
    res.check(f"[{tag}] hidden_dim is Meta's rule", margs.ffn_hidden() == cfg.ffn_hidden)
    meta_net = meta_model.build(margs, {k: torch.from_numpy(v) for k, v in tensors.items()})
    loss_t, _ = twin.evaluate(model, tokens, B, T, 2)
    p = run([args.mtp, "eval", "--model", path, "--data", shard, "--batch", str(B), "--seq", str(T),
             "--batches", "2", "--json"])
    if res.check(f"[{tag}] mtp eval runs", p is not None):
        out = json.loads(p.stdout.strip().splitlines()[-1])
        compare(res, f"[{tag}] mtp eval head_loss", np.array(out["head_loss"]), np.array(loss_t), TOL["eval_loss"])
    p = run([args.mtp, "info", path])
    res.check(f"[{tag}] mtp info runs", p is not None)
    prompt = [int(t) for t in tokens[:6]]
    want = meta_net.greedy(prompt, 8)
    for spec in ("none", "block") if cfg.n_future > 1 else ("none",):
        p = run([args.mtp, "generate", "--model", path, "--prompt-tokens", ",".join(map(str, prompt)),
                 "-n", "8", "--spec", spec, "--json", "--quiet", "--threads", "1"])
        got = json.loads(p.stdout.strip().splitlines()[-1])["tokens"] if p else None
        res.check(f"[{tag}] mtp generate --spec {spec} == meta_model greedy", got == want, f"{got} vs {want}")


def check_n_future(res, args, d, model_path, shard, tokens):
    for keep in (1, 2, 4):
        tag = f"n'={keep}"
        w0, wt, heads, cfg = twin_finetune(model_path, tokens, keep=keep)
        out = os.path.join(d, f"keep{keep}")
        if not res.check(f"[{tag}] mtp train runs", run(mtp_train_cmd(args, model_path, shard, out,
                                                                       ["--n-future", str(keep)])) is not None):
            continue
        path = check_run(res, tag, out, cfg, w0, wt, heads)
        if path and keep in (1, 4):
            check_loads_anywhere(res, args, tag, path, shard, tokens)


def check_freeze(res, args, d, model_path, shard, tokens):
    for freeze, keep in ((("trunk",), None), (("heads",), None), (("embeddings", "output"), None),
                         (("trunk", "heads", "embeddings"), None), (("trunk",), 1)):
        flag = ",".join(freeze)
        tag = f"freeze {flag}" + (f" n'={keep}" if keep else "")
        w0, wt, heads, cfg = twin_finetune(model_path, tokens, keep=keep, freeze=freeze)
        extra = ["--freeze", flag] + (["--n-future", str(keep)] if keep else [])
        out = os.path.join(d, tag.replace(" ", "_").replace(",", "+").replace("'", ""))
        if not res.check(f"[{tag}] mtp train runs", run(mtp_train_cmd(args, model_path, shard, out, extra)) is not None):
            continue
        path = check_run(res, tag, out, cfg, w0, wt, heads, freeze)
        p = run(mtp_train_cmd(args, model_path, shard, out + "_naive", extra + ["--head-schedule", "naive"]))
        with open(path, "rb") as f1, open(os.path.join(out + "_naive", "model.safetensors"), "rb") as f2:
            same = p is not None and f1.read() == f2.read()
        res.check(f"[{tag}] --head-schedule naive writes the byte-identical model", same)
        st, meta = twin.load_safetensors(os.path.join(out, "state.safetensors"))
        want = {f"param.{n}" for n in wt} | {f"{k}.{n}" for n in wt for k in ("adam_m", "adam_v")
                                             if twin.part_of(cfg, n) not in freeze}
        res.check(f"[{tag}] state: param. for every tensor, moments for the trained only", set(st) == want,
                  f"extra {sorted(set(st) - want)[:3]} missing {sorted(want - set(st))[:3]}")
        res.check(f"[{tag}] state records the frozen parts", json.loads(meta["train"]).get("freeze") == flag,
                  meta["train"][-200:])


def check_resume(res, args, d, model_path, shard):
    for extra in (["--n-future", "1", "--freeze", "trunk", "--shuffle"],
                  ["--freeze", "embeddings,output", "--head-schedule", "naive", "--grad-accum", "2"]):
        tag = " ".join(extra)
        straight, resumed = os.path.join(d, "straight"), os.path.join(d, "resumed")
        ok = run(mtp_train_cmd(args, model_path, shard, straight, extra + ["--steps", "6"])) is not None
        ok &= run(mtp_train_cmd(args, model_path, shard, resumed, extra + ["--steps", "6", "--stop-at", "3"])) is not None
        ok &= run([args.mtp, "train", "--resume", resumed, "--threads", "1", "--quiet"]) is not None
        if not res.check(f"[resume {tag}] runs", ok):
            continue
        same = all(open(os.path.join(straight, f), "rb").read() == open(os.path.join(resumed, f), "rb").read()
                   for f in ("model.safetensors", "state.safetensors"))
        res.check(f"[resume {tag}] stop at 3, resume to 6 == straight to 6 (byte-identical)", same)
        subprocess.run(["rm", "-rf", straight, resumed], check=True)


def check_bad_flags(res, args, d, model_path, shard):
    cfg_path = os.path.join(d, "cfg.json")
    with open(cfg_path, "w") as f:
        json.dump(CONFIG, f)
    base = [args.mtp, "train", "--data", shard, "--steps", "1", "--quiet", "--out", os.path.join(d, "bad")]
    cases = [
        (["--model", model_path, "--freeze", "trunk,bogus"], "--freeze"),
        (["--model", model_path, "--freeze", ""], "--freeze"),
        (["--model", model_path, "--freeze", "trunk,"], "--freeze"),
        (["--model", model_path, "--freeze", "output,heads,trunk,embeddings"], "--freeze"),
        (["--model", model_path, "--n-future", "5"], "--n-future"),
        (["--model", model_path, "--n-future", "0"], "--n-future"),
        (["--model", model_path, "--n-future", "x"], "--n-future"),
        (["--config", cfg_path, "--n-future", "1"], "--n-future"),
        (["--model", model_path, "--n-future", "2", "--head-weights", "1,1,1,1"], "--head-weights"),
    ]
    for extra, flag in cases:
        p = subprocess.run(base + extra, capture_output=True, text=True)
        msg = p.stderr.strip()
        res.check(f"[bad] {' '.join(extra[2:])}: exit 2, one line naming {flag}",
                  p.returncode == 2 and flag in msg and len(msg.splitlines()) == 1, f"exit {p.returncode}: {msg}")
    res.check("[bad] a run to resume", run(base[:-2] + ["--model", model_path, "--batch", "2", "--seq", str(T), "--steps", "2",
                                                  "--stop-at", "1", "--out", os.path.join(d, "part")]) is not None)
    for extra, flag in ((["--freeze", "trunk"], "--freeze"), (["--n-future", "1"], "--n-future")):
        p = subprocess.run([args.mtp, "train", "--resume", os.path.join(d, "part"), "--quiet"] + extra,
                           capture_output=True, text=True)
        res.check(f"[bad] --resume with {flag}: exit 2 naming it", p.returncode == 2 and flag in p.stderr,
                  f"exit {p.returncode}: {p.stderr.strip()}")


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--mtp", default="build/mtp")
    args = ap.parse_args()
    torch.set_num_threads(1)
    res = Results()
    res.check(f"{args.mtp} exists", os.access(args.mtp, os.X_OK))
    with tempfile.TemporaryDirectory(prefix="mtp_test_finetune_") as d:
        shard = os.path.join(d, "tokens.bin")
        tokens = make_tokens(CONFIG["vocab_size"])
        twin.write_shard(shard, tokens)
        model_path = os.path.join(d, "init.safetensors")
        make_model(CONFIG, model_path, seed=4321)
        check_n_future(res, args, d, model_path, shard, tokens)
        check_freeze(res, args, d, model_path, shard, tokens)
        check_resume(res, args, d, model_path, shard)
        check_bad_flags(res, args, d, model_path, shard)
    return res.summary()


if __name__ == "__main__":
    sys.exit(main())
