#!/usr/bin/python3
"""test_nonfinite.py: a training run whose loss or gradient norm stops being finite.

- A run that diverges (lr 10, weight decay 100: every 2-D weight is multiplied by -999
  per step until products overflow) stops at the first bad step K with exit 1 and one
  line naming step K and what is not finite; DIR's model and state are the checkpoint
  of step K-1, finite and byte-identical to a run stopped there with --stop-at; every
  line of metrics.jsonl parses as JSON, steps 1..K-1 once each, and no file in DIR holds
  NaN or infinity as text.
- Finite weights whose products overflow at once (the final norm at 3e38, the output
  matrix at 1e37) stop at step 1, naming the head's loss or the gradient norm, and
  leave no checkpoint at all.
"""
import json
import math
import os
import re
import subprocess
import sys
import tempfile

import numpy as np

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "tools"))
import mtp_twin as twin  # noqa: E402
from tally import Tally, mtp_binary  # noqa: E402

MTP = mtp_binary()
tally = Tally()
check = tally.check
CFG = dict(dim=32, n_layers=3, n_heads=4, n_kv_heads=2, vocab_size=67, multiple_of=16, max_seq_len=32,
           n_future_tokens=2)
MSG = re.compile(r"^mtp train: step (\d+): the (loss of future head (\d+)|gradient norm) is not finite")


def train(*args):
    return subprocess.run([MTP, "train", "--batch", "2", "--seq", "16", "--threads", "1", "--quiet", *args],
                          capture_output=True, text=True)


def error_line(p):
    """(step, what) from a one-line error, or None."""
    lines = p.stderr.strip().splitlines()
    m = MSG.match(lines[-1]) if len(lines) == 1 else None
    return (int(m.group(1)), m.group(2)) if m else None


def metrics_ok(run_dir, steps):
    """Every line parses, is a training step, and the steps are exactly `steps`."""
    path = os.path.join(run_dir, "metrics.jsonl")
    if not os.path.exists(path):
        return not steps
    seen = []
    for line in open(path):
        try:
            seen.append(json.loads(line, parse_constant=lambda c: 1 / 0)["step"])
        except (ValueError, ZeroDivisionError, KeyError, TypeError):
            return False
    return seen == list(steps)


def no_nan_text(run_dir):
    for name in os.listdir(run_dir):
        data = open(os.path.join(run_dir, name), "rb").read()
        text = data if name.endswith(".jsonl") else data[8:8 + int.from_bytes(data[:8], "little")]
        if re.search(rb"nan|inf", text, re.IGNORECASE):
            return False
    return True


with tempfile.TemporaryDirectory(prefix="mtp_test_nonfinite_") as d:
    shard = os.path.join(d, "tok.bin")
    twin.write_shard(shard, np.random.default_rng(0).integers(0, CFG["vocab_size"], 4000))
    cfg = os.path.join(d, "cfg.json")
    with open(cfg, "w") as f:
        json.dump(CFG, f)

    # 1. a run that diverges after some good checkpoints
    diverge = ["--config", cfg, "--data", shard, "--steps", "30", "--lr", "10", "--weight-decay", "100",
               "--warmup", "0", "--lr-schedule", "constant", "--save-every", "1"]
    run = os.path.join(d, "diverged")
    p = train(*diverge, "--out", run)
    got = error_line(p)
    check(p.returncode == 1 and got is not None, f"diverging run: exit 1 and one line naming the step: {p.stderr!r}")
    k = got[0] if got else 0
    print(f"diverged at step {k}: {p.stderr.strip()}")
    check(k >= 3, f"diverging run: some good steps before the bad one (step {k})")
    good = os.path.join(d, "good")
    g = train(*diverge, "--stop-at", str(k - 1), "--out", good)
    check(g.returncode == 0, "the same run stopped at the last good step " + g.stderr)
    for name in ("model.safetensors", "state.safetensors"):
        a, b = os.path.join(run, name), os.path.join(good, name)
        check(os.path.exists(a) and os.path.exists(b) and open(a, "rb").read() == open(b, "rb").read(),
              f"diverged {name} == the checkpoint of step {k - 1}")
    if os.path.exists(os.path.join(run, "state.safetensors")):
        st, meta = twin.load_safetensors(os.path.join(run, "state.safetensors"))
        check(meta.get("step") == str(k - 1) and all(np.all(np.isfinite(v)) for v in st.values()),
              "diverged state: step K-1, weights and moments finite")
        ok = subprocess.run([MTP, "info", os.path.join(run, "model.safetensors")], capture_output=True).returncode == 0
        check(ok, "diverged: the latest model loads")
    check(metrics_ok(run, range(1, k)), "diverged metrics.jsonl: steps 1..K-1 once each, every line JSON")
    check(no_nan_text(run), "diverged: no NaN or inf as text in DIR")
    again = subprocess.run([MTP, "train", "--resume", run, "--quiet", "--threads", "1"], capture_output=True, text=True)
    check(again.returncode == 1 and error_line(again) == got, "resuming the diverged run stops at the same step")
    check(metrics_ok(run, range(1, k)), "after the resume: metrics.jsonl unchanged in content")

    # 2. finite weights whose products overflow at once
    for tensor, value, what in (("norm.weight", 3e38, "loss of future head 1"),
                                ("output.weight", 1e37, "gradient norm")):
        model = twin.MTPModel(twin.Config.from_dict(CFG))
        twin.init_params(model, seed=1)
        t = twin.model_tensors(model)
        t[tensor] = np.full_like(t[tensor], value) if tensor.startswith("norm") else t[tensor] * np.float32(value)
        check(all(np.all(np.isfinite(v)) for v in t.values()), f"{tensor} x {value:g}: finite weights")
        path = os.path.join(d, f"huge_{tensor}.safetensors")
        twin.save_safetensors(path, t, {"format": "mtp", "config": json.dumps(CFG)})
        out = os.path.join(d, f"huge_{tensor}")
        p = train("--model", path, "--data", shard, "--steps", "3", "--save-every", "1", "--out", out)
        check(p.returncode == 1 and error_line(p) == (1, what), f"{tensor} x {value:g}: step 1, {what}: {p.stderr!r}")
        check(not os.path.exists(os.path.join(out, "model.safetensors")) and
              not os.path.exists(os.path.join(out, "state.safetensors")), f"{tensor}: no checkpoint written")
        check(metrics_ok(out, []) and no_nan_text(out), f"{tensor}: metrics.jsonl holds no line of the bad step")

tally.finish()
