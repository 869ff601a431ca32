#!/usr/bin/env python3
"""Training throughput and peak memory: mtp against PyTorch eager, the same model in the
same run (issue #2's table). Every row runs in its own process, so peak RSS is that row's.

    /usr/bin/python3 bench/train.py [--mtp build/mtp] [--steps 6] [--threads 2] [--bf16]

Rows: dim 384, n_layers 6, n_heads 6, hidden_dim 1024, B 8, T 256, vocab 256 and 8192;
n_future_tokens 1, and 4 with the sequential (memory-efficient) and naive head orders.
PyTorch runs tools/mtp_twin.py's model; its sequential order is the paper's recipe
(backward each head into a detached trunk output, then one trunk backward). PyTorch gets the
same OPENBLAS_CORETYPE that mtp chose (Debian's OpenBLAS misdetects recent CPUs).
"peak" is mtp's model FLOP/s (bench train's count) as a share of the fp32 FMA loop's FLOP/s
measured in the same process; --bf16 adds mtp's --precision bf16 beside each row (speed-up
over mtp's own fp32, and the share of the fp32 peak, so the columns compare)."""
import argparse
import json
import os
import resource
import subprocess
import sys
import time

ROWS = [(v, n, s) for v in (256, 8192) for (n, s) in ((1, "sequential"), (4, "sequential"), (4, "naive"))]
SHAPE = dict(dim=384, n_layers=6, n_heads=6, hidden=1024, batch=8, seq=256)


def torch_row(vocab, n_future, schedule, steps, threads):
    """One PyTorch row in this process: tokens/s over steps-1 timed steps, peak RSS."""
    import torch
    import torch.nn.functional as F
    sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "tools"))
    import mtp_twin as tw
    torch.set_num_threads(threads)
    cfg = tw.Config.from_dict(dict(dim=SHAPE["dim"], n_layers=SHAPE["n_layers"], n_heads=SHAPE["n_heads"],
                                   n_kv_heads=SHAPE["n_heads"], vocab_size=vocab, multiple_of=256,
                                   norm_eps=1e-5, rope_theta=10000.0, max_seq_len=SHAPE["seq"],
                                   n_future_tokens=n_future, hidden_dim=SHAPE["hidden"]))
    model = tw.build_model(cfg)
    tw.init_params(model, seed=1)
    opt = tw.make_optimizer(model, 0.1, 0.9, 0.95, 1e-8)
    B, T = SHAPE["batch"], SHAPE["seq"]
    g = torch.Generator().manual_seed(7)
    data = torch.randint(0, vocab, (steps, B, T + n_future), generator=g)

    def step(k):
        x = data[k, :, :T]
        ys = [data[k, :, i:T + i] for i in range(1, n_future + 1)]
        opt.zero_grad(set_to_none=True)
        if schedule == "naive":
            logits = model(x)
            loss = sum(F.cross_entropy(l.reshape(-1, vocab), y.reshape(-1)) for l, y in zip(logits, ys))
            loss.backward()
        else:  # the paper's memory-efficient order
            z = model.trunk(x)
            zd = z.detach().requires_grad_(True)
            for head, y in zip(model.future_heads(), ys):
                l = model.output(model.norm(head(zd)))
                F.cross_entropy(l.reshape(-1, vocab), y.reshape(-1)).backward()
                del l
            z.backward(zd.grad)
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        opt.step()

    step(0)
    t0 = time.perf_counter()
    for k in range(1, steps):
        step(k)
    el = time.perf_counter() - t0
    rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    return {"tok_per_s": B * T * (steps - 1) / el, "peak_rss_mb": rss}


def torch_env(mtp_backend):
    """PyTorch loads the same Debian OpenBLAS: give it the kernel core mtp runs with, so the
    baseline is not slowed by OpenBLAS's failure to recognise the CPU."""
    env = dict(os.environ)
    core = mtp_backend.rsplit("core ", 1)[-1].split(",")[0] if "core " in mtp_backend else ""
    if core and "OPENBLAS_CORETYPE" not in env:
        env["OPENBLAS_CORETYPE"] = core
    return env


def run_json(cmd, env=None):
    out = subprocess.run(cmd, check=True, capture_output=True, text=True, env=env).stdout
    return json.loads(out.strip().splitlines()[-1])


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--mtp", default="build/mtp")
    ap.add_argument("--steps", type=int, default=6)
    ap.add_argument("--threads", type=int, default=os.cpu_count())
    ap.add_argument("--bf16", action="store_true")
    ap.add_argument("--rows", default="all", help="all, or a comma-separated list of row numbers (1-6)")
    ap.add_argument("--torch-row", nargs=3, metavar=("VOCAB", "N", "SCHEDULE"))
    a = ap.parse_args()
    if a.torch_row:
        v, n, s = a.torch_row
        print(json.dumps(torch_row(int(v), int(n), s, a.steps, a.threads)))
        return 0
    print(f"dim 384, 6 layers, 6 heads, hidden 1024, B 8, T 256, {a.threads} threads, "
          f"{a.steps - 1} timed steps after 1 warm-up (AdamW included)")
    bf = f" | {'bf16 tok/s':>10} {'vs f32':>6} {'peak':>5}" if a.bf16 else ""
    print(f"{'vocab':>5} {'n':>2} {'heads':>10} | {'mtp tok/s':>9} {'torch tok/s':>11} {'speed':>6} {'peak':>5} | "
          f"{'mtp MiB':>7} {'torch MiB':>9} {'mem':>5}{bf}")
    mem = {}
    rows = ROWS if a.rows == "all" else [ROWS[int(i) - 1] for i in a.rows.split(",")]
    for v, n, s in rows:
        cmd = [a.mtp, "bench", "train", "--vocab", str(v), "--n-future", str(n), "--head-schedule", s,
               "--steps", str(a.steps), "--threads", str(a.threads)]
        m = run_json(cmd)
        t = run_json([sys.executable, __file__, "--torch-row", str(v), str(n), s, "--steps", str(a.steps),
                      "--threads", str(a.threads)], env=torch_env(m["backend"]))
        mem[(v, n, s)] = m["peak_rss_mb"]
        pk = lambda r: f"{100 * r['model_gflop_per_s'] / r['peak_fp32_gflop_per_s']:>4.0f}%" \
            if r.get("peak_fp32_gflop_per_s") else f"{'-':>5}"
        bf = ""
        if a.bf16:
            b = run_json(cmd + ["--precision", "bf16"])
            bf = f" | {b['tok_per_s']:>10.0f} {b['tok_per_s'] / m['tok_per_s']:>5.2f}x {pk(b)}"
        print(f"{v:>5} {n:>2} {s:>10} | {m['tok_per_s']:>9.0f} {t['tok_per_s']:>11.0f} "
              f"{m['tok_per_s'] / t['tok_per_s']:>5.2f}x {pk(m)} | {m['peak_rss_mb']:>7.0f} {t['peak_rss_mb']:>9.0f} "
              f"{m['peak_rss_mb'] / t['peak_rss_mb']:>5.2f}{bf}", flush=True)
    if len(rows) < len(ROWS):
        return 0
    for v in (256, 8192):
        base = mem[(v, 1, "sequential")]
        print(f"vocab {v}: mtp peak memory vs n=1: n=4 sequential {mem[(v, 4, 'sequential')] / base:.2f}x, "
              f"n=4 naive {mem[(v, 4, 'naive')] / base:.2f}x")
    return 0


if __name__ == "__main__":
    sys.exit(main())
