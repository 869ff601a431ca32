#!/usr/bin/env python3
"""File handling that must stay cheap or finite, whatever the input:
- `mtp info` reads a model file's header alone: on a 7B-shaped model (27 GB of F32, a
  sparse file) it answers with the right counts and a peak memory far below the weights;
- `mtp prepare` walks each directory once: symbolic links that loop back or lead to a
  directory already walked add nothing twice and end;
- where the environment holds OpenBLAS to a core below what the CPU runs (these machines
  set OPENBLAS_CORETYPE=Haswell on AVX-512 CPUs), the library keeps it and says once what
  it costs. The environment's setting is not changed here."""
import json
import os
import resource
import struct
import subprocess
import sys
import tempfile

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from tally import Tally, mtp_binary  # noqa: E402

MTP = mtp_binary()
t = Tally()


def sparse_model(path, cfg):
    """A safetensors file with every tensor of cfg's layout (F32), its data a hole."""
    d, f, v, L, nf = cfg["dim"], cfg["hidden_dim"], cfg["vocab_size"], cfg["n_layers"], cfg["n_future_tokens"]
    kv = cfg["n_kv_heads"] * (d // cfg["n_heads"])
    names = [("tok_embeddings.weight", [v, d])]
    for l in range(L):
        pre = f"layers.{l}" if l <= L - nf else f"extra_heads.{l - (L - nf) - 1}"
        names += [(f"{pre}.attention_norm.weight", [d]), (f"{pre}.attention.wq.weight", [d, d]),
                  (f"{pre}.attention.wk.weight", [kv, d]), (f"{pre}.attention.wv.weight", [kv, d]),
                  (f"{pre}.attention.wo.weight", [d, d]), (f"{pre}.ffn_norm.weight", [d]),
                  (f"{pre}.feed_forward.w1.weight", [f, d]), (f"{pre}.feed_forward.w2.weight", [d, f]),
                  (f"{pre}.feed_forward.w3.weight", [f, d])]
    names += [("norm.weight", [d]), ("output.weight", [v, d])]
    header, off = {"__metadata__": {"format": "mtp", "config": json.dumps(cfg)}}, 0
    for name, shape in names:
        n = 4
        for s in shape:
            n *= s
        header[name] = {"dtype": "F32", "shape": shape, "data_offsets": [off, off + n]}
        off += n
    h = json.dumps(header).encode()
    h += b" " * (-len(h) % 8)
    with open(path, "wb") as fh:
        fh.write(struct.pack("<Q", len(h)) + h)
        fh.truncate(8 + len(h) + off)
    return off // 4


with tempfile.TemporaryDirectory() as tmp:
    cfg = {"dim": 4096, "n_layers": 32, "n_heads": 32, "n_kv_heads": 32, "vocab_size": 32000,
           "multiple_of": 256, "hidden_dim": 11008, "n_future_tokens": 4, "max_seq_len": 4096}
    model = os.path.join(tmp, "7b.safetensors")
    params = sparse_model(model, cfg)
    before = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss
    p = subprocess.run([MTP, "info", model], capture_output=True, text=True, timeout=60)
    rss_mb = max(before, resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss) / 1024
    t.check(p.returncode == 0, f"mtp info on a 7B-shaped file: exit {p.returncode}: {p.stderr.strip()}")
    t.check(f"parameters: {params} total" in p.stdout, f"mtp info counts {params} parameters: {p.stdout!r}")
    t.check(f"F32  " in p.stdout and str(params * 4) in p.stdout, "mtp info gives the F32 bytes")
    t.check(rss_mb < 200, f"mtp info peak memory {rss_mb:.0f} MB for {params * 4 / 2**30:.0f} GiB of weights")

    # a tree whose links loop back to an ancestor and lead to a directory walked already
    root = os.path.join(tmp, "code")
    os.makedirs(os.path.join(root, "a", "b"))
    with open(os.path.join(root, "a", "b", "x.py"), "w") as fh:
        fh.write("print('hello')\n")
    os.symlink("../..", os.path.join(root, "a", "b", "loop"))
    os.symlink(os.path.join(root, "a"), os.path.join(root, "again"))
    out = os.path.join(tmp, "data")
    p = subprocess.run([MTP, "prepare", "--out", out, "--val-fraction", "0", root],
                       capture_output=True, text=True, timeout=60)
    t.check(p.returncode == 0, f"prepare over a symlink loop: exit {p.returncode}: {p.stderr.strip()}")
    size = os.path.getsize(os.path.join(out, "train.bin")) if p.returncode == 0 else 0
    t.check(size == 1024 + 2 * len("print('hello')\n\n"),
            f"prepare over a symlink loop takes the one file once (shard of {size} bytes)")

flags = set()
with open("/proc/cpuinfo") as fh:
    for line in fh:
        if line.startswith("flags"):
            flags = set(line.split(":", 1)[1].split())
            break
avx512 = {"avx512f", "avx512bw", "avx512vl", "avx512dq"} <= flags
core = os.environ.get("OPENBLAS_CORETYPE")
if not avx512 or core not in ("Haswell", "Sandybridge", "Nehalem", "Prescott"):
    t.skip(f"the cost note needs an AVX-512 CPU held to an older core (OPENBLAS_CORETYPE={core})")
else:
    with tempfile.TemporaryDirectory() as tmp:
        p = subprocess.run([MTP, "eval", "--model", os.path.join(tmp, "none.safetensors"), "--data", "x"],
                           capture_output=True, text=True, timeout=60)
        notes = [ln for ln in p.stderr.splitlines() if ln.startswith("mtp: note: ")]
        t.check(len(notes) == 1 and f"OPENBLAS_CORETYPE={core}" in notes[0] and "SkylakeX" in notes[0],
                f"one note names the user's core and what the CPU runs: {notes}")
        t.check(f"core {core}" in p.stderr, f"the user's core is kept: {p.stderr.splitlines()[:1]}")

t.finish()
