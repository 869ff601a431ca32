#!/usr/bin/env python3
"""`mtp convert` and decoding in bf16 and 8-bit end to end, on a small byte-level model
trained here:
- converted files hold what docs/formats.md says, read back with PyTorch (bf16 = the fp32
  weights rounded to nearest even; Q8 = int8 times the F16 block scale, within half a
  scale of the fp32 weight), and `mtp info` reports their types and bytes;
- validation loss of the bf16 and q8 files within 1% and 3% of fp32;
- a converted file decodes exactly like the F32 file packed at load (--dtype): the same
  tokens, so the kernels see the same bits either way; speculative output equals plain in
  every type;
- conversions round-trip: q8 -> f32 -> q8 gives the same bytes;
- bad requests exit non-zero with one line: an unknown --dtype, a missing input, a bf16
  file asked to decode as q8."""
import json
import os
import struct
import subprocess
import tempfile

import torch

from tally import Tally, mtp_binary

MTP = mtp_binary()
tally = Tally()
check = tally.check


def run(*args):
    return subprocess.run([MTP, *args], capture_output=True, text=True)


def read_st(path):
    """{name: tensor} of a safetensors file, by the format's definition (no library)."""
    raw = open(path, "rb").read()
    n = struct.unpack("<Q", raw[:8])[0]
    hdr = json.loads(raw[8:8 + n])
    data = raw[8 + n:]
    types = {"F32": torch.float32, "BF16": torch.bfloat16, "F16": torch.float16, "I8": torch.int8}
    out = {}
    for name, t in hdr.items():
        if name == "__metadata__":
            continue
        b, e = t["data_offsets"]
        out[name] = torch.frombuffer(bytearray(data[b:e]), dtype=types[t["dtype"]]).reshape(t["shape"])
    return out


def gen(model, prompt, *args):
    r = run("generate", "--model", model, "--prompt", prompt, "-n", "48", "--json", "--threads", "2", *args)
    assert r.returncode == 0, r.stderr
    return json.loads(r.stdout.splitlines()[0])["tokens"]


def val_loss(model, data):
    r = run("eval", "--model", model, "--data", data, "--batches", "8", "--seq", "128", "--json")
    assert r.returncode == 0, r.stderr
    return json.loads(r.stdout.splitlines()[-1])["head_loss"][0]


with tempfile.TemporaryDirectory() as tmp:
    cfg = os.path.join(tmp, "cfg.json")
    with open(cfg, "w") as f:  # hidden 96 and dim 64: 8-bit rows of 2 and 3 blocks
        json.dump({"dim": 64, "n_layers": 5, "n_heads": 4, "n_kv_heads": 2, "vocab_size": 256,
                   "hidden_dim": 96, "n_future_tokens": 4, "max_seq_len": 128}, f)
    data = os.path.join(tmp, "data")
    subprocess.run([MTP, "prepare", "--out", data, "src"], check=True, capture_output=True)
    run_dir = os.path.join(tmp, "run")
    subprocess.run([MTP, "train", "--config", cfg, "--data", os.path.join(data, "train.bin"), "--batch", "8",
                    "--seq", "64", "--steps", "150", "--warmup", "10", "--lr", "1e-2", "--quiet", "--out", run_dir],
                   check=True, capture_output=True)
    f32 = os.path.join(run_dir, "model.safetensors")
    files = {}
    for t in ("bf16", "q8", "f32"):
        files[t] = os.path.join(tmp, f"m_{t}.safetensors")
        r = run("convert", f32, files[t], "--dtype", t)
        check(r.returncode == 0 and f"{t} matrices" in r.stdout, f"convert --dtype {t}: {r.stderr.strip()}")

    # what the files hold
    deq = os.path.join(tmp, "q8_to_f32.safetensors")
    subprocess.run([MTP, "convert", files["q8"], deq, "--dtype", "f32"], check=True, capture_output=True)
    ref, bf, q8, back = read_st(f32), read_st(files["bf16"]), read_st(files["q8"]), read_st(deq)
    check(read_st(files["f32"]).keys() == ref.keys() and all(torch.equal(read_st(files["f32"])[n], ref[n]) for n in ref),
          "f32 -> f32: the same tensors")
    mats = [n for n, w in ref.items() if w.dim() == 2]
    check(all(bf[n].dtype == torch.bfloat16 and torch.equal(bf[n], ref[n].to(torch.bfloat16)) for n in mats),
          "bf16 file: every matrix is the fp32 one rounded to nearest even")
    check(all(bf[n].dtype == torch.float32 and torch.equal(bf[n], ref[n]) for n in ref if ref[n].dim() == 1),
          "bf16 file: norms kept in F32")
    ok_q8 = True
    for n in mats:
        q, s, w = q8[n], q8[n + "_scale"], ref[n]
        ok_q8 &= q.dtype == torch.int8 and s.dtype == torch.float16 and s.shape[1] == (w.shape[1] + 31) // 32
        scale = s.float().repeat_interleave(32, dim=1)[:, :w.shape[1]]
        ok_q8 &= bool(((q.float() * scale - w).abs() <= scale * 0.5 + 1e-7).all()) and int(q.abs().max()) <= 127
        ok_q8 &= torch.equal(back[n], q.float() * scale)  # q8 -> f32 is the dequantized matrix
    check(ok_q8, "q8 file: int8 x F16 block scales within half a scale of the fp32 weights; f32 of it dequantizes")
    info = run("info", files["q8"]).stdout
    check("decode as q8" in info and "I8" in info and "F16" in info, "mtp info shows the 8-bit types: " + info)

    # conversion round trip: q8 -> f32 -> q8 is the same file
    again = os.path.join(tmp, "again.safetensors")
    subprocess.run([MTP, "convert", deq, again, "--dtype", "q8"], check=True, capture_output=True)
    check(open(again, "rb").read() == open(files["q8"], "rb").read(), "q8 -> f32 -> q8: the same bytes")

    # validation loss of the converted models
    val = os.path.join(data, "val.bin")
    l32, lbf, lq8 = val_loss(f32, val), val_loss(files["bf16"], val), val_loss(files["q8"], val)
    print(f"  validation loss: f32 {l32:.4f}, bf16 {lbf:.4f} ({100 * (lbf / l32 - 1):+.2f}%), "
          f"q8 {lq8:.4f} ({100 * (lq8 / l32 - 1):+.2f}%)")
    check(abs(lbf / l32 - 1) < 0.01, "bf16 validation loss within 1% of fp32")
    check(abs(lq8 / l32 - 1) < 0.03, "q8 validation loss within 3% of fp32")

    # decoding: file types equal packing at load; speculative equals plain in every type
    for prompt in ("static void ", "#include <"):
        for t in ("bf16", "q8"):
            plain = gen(files[t], prompt, "--spec", "none")
            check(gen(f32, prompt, "--spec", "none", "--dtype", t) == plain,
                  f"{t} file decodes like the F32 file packed as {t}")
            for spec in ("block", "tree"):
                check(gen(files[t], prompt, "--spec", spec) == plain, f"{t}: --spec {spec} differs from plain")

    # bad requests: one line, non-zero exit
    for args, code, what in ((("convert", f32, os.path.join(tmp, "x"), "--dtype", "q4"), 2, "--dtype"),
                             (("convert", os.path.join(tmp, "none"), os.path.join(tmp, "x"), "--dtype", "q8"), 1,
                              "none"),
                             (("convert", f32, "--dtype", "q8"), 2, "IN and OUT"),
                             (("generate", "--model", files["bf16"], "--prompt", "a", "--dtype", "q8"), 1, "bf16")):
        r = run(*args)
        check(r.returncode == code and what in r.stderr and len(r.stderr.strip().splitlines()) == 1,
              f"{' '.join(args[:1])} {args[-1]}: exit {r.returncode}, stderr {r.stderr.strip()!r}")
    check(not os.path.exists(os.path.join(tmp, "x")), "a failed convert leaves no file")

raise SystemExit(tally.summary())
