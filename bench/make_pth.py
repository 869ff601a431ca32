#!/usr/bin/env python3
"""make_pth.py: writes a random-weights checkpoint folder in the layout of Meta's release:
DIR/consolidated.pth (torch.save's zip: folder `consolidated/`, `data.pkl` pickled with
protocol 2 exactly as torch.save pickles a state dict, `data/<key>` records 64-byte aligned,
a `version` record, the ZIP64 end records torch's writer always adds) and DIR/params.json
with Meta's keys. Tensor names and shapes are docs/formats.md's.

It streams: one tensor is generated, written and dropped at a time (the pickle needs only
shapes, the zip's CRCs and sizes go into data descriptors and the central directory), so
Meta's 7B shape (27 GB in fp32) is written on a machine with far less memory.

For a shape torch.save can also write here, the file is byte for byte what torch.save
writes for the same tensors (--check does that comparison). Records past 4 GiB use the
ZIP64 forms of PKWARE's APPNOTE (zip64 extra fields in the local and central headers, 8-byte
data descriptors; a central field holds all three values, which torch's reader needs);
--zip64-from N forces them from N bytes on, so a small file shows torch.load reads them
(tests/test_pth.py does).

  /usr/bin/python3 bench/make_pth.py --dim 4096 --n-layers 32 --n-heads 32 --vocab 32000 \
      --n-future 4 --dtype bf16 --out /data/mtp-7b-random
"""
import argparse
import collections
import json
import os
import pickle
import struct
import zlib

import torch
import torch._utils

U32 = 0xFFFFFFFF


def hidden_dim(dim, multiple_of, ffn_dim_multiplier):
    """Meta's FFN rule (docs/formats.md)."""
    h = int(2 * 4 * dim / 3)
    if ffn_dim_multiplier is not None:
        h = int(ffn_dim_multiplier * h)
    return multiple_of * ((h + multiple_of - 1) // multiple_of)


def tensor_table(a):
    """[(name, shape)] in the order of docs/formats.md."""
    d, hd = a.dim, a.dim // a.n_heads
    kv = (a.n_kv_heads or a.n_heads) * hd
    f = a.hidden or hidden_dim(a.dim, a.multiple_of, a.ffn_dim_multiplier)

    def block(prefix):
        return [(prefix + "attention.wq.weight", (d, d)), (prefix + "attention.wk.weight", (kv, d)),
                (prefix + "attention.wv.weight", (kv, d)), (prefix + "attention.wo.weight", (d, d)),
                (prefix + "feed_forward.w1.weight", (f, d)), (prefix + "feed_forward.w2.weight", (d, f)),
                (prefix + "feed_forward.w3.weight", (f, d)), (prefix + "attention_norm.weight", (d,)),
                (prefix + "ffn_norm.weight", (d,))]

    t = [("tok_embeddings.weight", (a.vocab, d))]
    for i in range(a.n_layers - a.n_future + 1):
        t += block(f"layers.{i}.")
    for j in range(a.n_future - 1):
        t += block(f"extra_heads.{j}.")
    return t + [("norm.weight", (d,)), ("output.weight", (a.vocab, d))]


def make_tensor(i, shape, dtype, seed):
    """Tensor i of the table: its own generator, so any one can be remade alone (--check)."""
    g = torch.Generator().manual_seed(seed * 1000003 + i)
    x = torch.randn(shape, generator=g) * 0.02
    if len(shape) == 1:
        x += 1.0  # norm weights near 1, as trained ones are
    return x.to(dtype)


# ---- the pickle: torch.save's own mechanism (a protocol-2 Pickler whose persistent_id
# names storages), applied to stand-ins that hold only a key, a shape and a dtype ----------

class _Storage:
    def __init__(self, key, numel, cls):
        self.key, self.numel, self.cls = key, numel, cls


class _Tensor:
    def __init__(self, storage, shape):
        self.storage, self.shape = storage, shape

    def __reduce_ex__(self, protocol):
        stride, s = [], 1
        for n in reversed(self.shape):
            stride.insert(0, s)
            s *= n
        return (torch._utils._rebuild_tensor_v2,
                (self.storage, 0, tuple(self.shape), tuple(stride), False, collections.OrderedDict()))


class _Pickler(pickle.Pickler):
    def persistent_id(self, obj):
        if isinstance(obj, _Storage):
            return ("storage", obj.cls, obj.key, "cpu", obj.numel)
        return None


def state_dict_pickle(table, dtype):
    cls = {torch.float32: torch.FloatStorage, torch.bfloat16: torch.BFloat16Storage}[dtype]
    sd = collections.OrderedDict()
    for i, (name, shape) in enumerate(table):
        numel = 1
        for n in shape:
            numel *= n
        sd[name] = _Tensor(_Storage(str(i), numel, cls), shape)
    import io
    buf = io.BytesIO()
    _Pickler(buf, protocol=2).dump(sd)
    return buf.getvalue()


# ---- the zip, laid out as torch's writer lays it out ------------------------------------

class ZipWriter:
    def __init__(self, path, zip64_from=U32):
        self.f = open(path, "wb")
        self.central = []
        self.zip64_from = zip64_from

    def add(self, name, chunks, size):
        """A stored record of size bytes from an iterable of byte chunks."""
        nb = name.encode()
        off = self.f.tell()
        big = size >= self.zip64_from or off >= self.zip64_from
        z64 = struct.pack("<HHQQ", 1, 16, 0, 0) if big else b""  # sizes follow in the descriptor
        pad = (-(off + 30 + len(nb) + len(z64) + 4)) % 64  # torch's "FB" field: data 64-byte aligned
        extra = z64 + b"FB" + struct.pack("<H", pad) + b"Z" * pad
        lsize = U32 if big else 0
        self.f.write(struct.pack("<IHHHHHIIIHH", 0x04034B50, 45 if big else 0, 0x0808, 0, 0, 0, 0, lsize, lsize,
                                 len(nb), len(extra)) + nb + extra)
        crc, n = 0, 0
        for c in chunks:
            crc = zlib.crc32(c, crc)
            n += len(c)
            self.f.write(c)
        assert n == size, (name, n, size)
        if big:
            self.f.write(struct.pack("<IIQQ", 0x08074B50, crc, size, size))
        else:
            self.f.write(struct.pack("<IIII", 0x08074B50, crc, size, size))
        self.central.append((nb, off, crc, size))

    def close(self):
        cd_off = self.f.tell()
        t = self.zip64_from
        for nb, off, crc, size in self.central:
            # torch's reader (miniz, as of 1.13) refuses a zip64 field holding only some of
            # the three values, so a record that needs one gets all three, all saturated
            fields = [size, size, off] if (size >= t or off >= t) else []
            ext = struct.pack("<HH", 1, 8 * len(fields)) + struct.pack(f"<{len(fields)}Q", *fields) if fields else b""
            s32, o32 = (U32, U32) if fields else (size, off)
            self.f.write(struct.pack("<IHHHHHHIIIHHHHHII", 0x02014B50, 45 if fields else 0, 45 if fields else 0,
                                     0x0808, 0, 0, 0, crc, s32, s32, len(nb), len(ext), 0, 0, 0, 0, o32) + nb + ext)
        cd_size, n = self.f.tell() - cd_off, len(self.central)
        z64 = self.f.tell()
        self.f.write(struct.pack("<IQHHIIQQQQ", 0x06064B50, 44, 0x031E, 45, 0, 0, n, n, cd_size, cd_off))
        self.f.write(struct.pack("<IIQI", 0x07064B50, 0, z64, 1))
        n16 = 0xFFFF if n >= 0xFFFF else n
        self.f.write(struct.pack("<IHHHHIIH", 0x06054B50, 0, 0, n16, n16, U32 if cd_size >= t else cd_size,
                                 U32 if cd_off >= t else cd_off, 0))
        self.f.close()


def tensor_chunks(x, chunk=64 << 20):
    """The tensor's bytes in pieces of at most chunk bytes (no second full copy)."""
    flat = x.reshape(-1)
    per = max(1, chunk // flat.element_size())
    for s in range(0, flat.numel(), per):
        part = flat[s:s + per]
        yield part.view(torch.int16 if part.element_size() == 2 else torch.int32).numpy().tobytes()


def write(a):
    os.makedirs(a.out, exist_ok=True)
    dtype = {"fp32": torch.float32, "bf16": torch.bfloat16}[a.dtype]
    table = tensor_table(a)
    path = os.path.join(a.out, "consolidated.pth")
    z = ZipWriter(path + ".tmp", a.zip64_from)
    pkl = state_dict_pickle(table, dtype)
    z.add("consolidated/data.pkl", [pkl], len(pkl))
    esize = 4 if dtype == torch.float32 else 2
    # torch.save writes the storages in the order of their keys as strings: 0, 1, 10, 11, ...
    for key in sorted(str(i) for i in range(len(table))):
        i = int(key)
        name, shape = table[i]
        x = make_tensor(i, shape, dtype, a.seed)
        z.add(f"consolidated/data/{key}", tensor_chunks(x), x.numel() * esize)
        del x
    z.add("consolidated/version", [b"3\n"], 2)
    z.close()
    os.replace(path + ".tmp", path)
    params = {"dim": a.dim, "n_layers": a.n_layers, "n_heads": a.n_heads, "vocab_size": a.vocab,
              "multiple_of": a.multiple_of, "ffn_dim_multiplier": a.ffn_dim_multiplier, "norm_eps": a.norm_eps,
              "rope_theta": a.rope_theta, "n_future_tokens": a.n_future}
    if a.n_kv_heads:
        params["n_kv_heads"] = a.n_kv_heads
    if a.hidden:
        params["hidden_dim"] = a.hidden
    with open(os.path.join(a.out, "params.json"), "w") as f:
        json.dump(params, f)
    return table, dtype


def check(a, table, dtype):
    """torch.load gives the tensors, and torch.save of them writes the same bytes."""
    path = os.path.join(a.out, "consolidated.pth")
    got = torch.load(path)
    ref = collections.OrderedDict((n, make_tensor(i, s, dtype, a.seed)) for i, (n, s) in enumerate(table))
    assert list(got) == list(ref), "names differ"
    for n in ref:
        assert got[n].dtype == dtype and torch.equal(got[n], ref[n]), n
    if a.zip64_from == U32:
        os.makedirs(os.path.join(a.out, "twin"), exist_ok=True)
        twin = os.path.join(a.out, "twin", "consolidated.pth")  # torch names the folder after the file
        torch.save(ref, twin)
        same = open(twin, "rb").read() == open(path, "rb").read()
        os.unlink(twin)
        os.rmdir(os.path.dirname(twin))
        assert same, "the file differs from what torch.save writes"
    print(f"check: torch.load reads {len(ref)} tensors back"
          + (", and torch.save writes the same bytes" if a.zip64_from == U32 else ""))


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--dim", type=int, required=True)
    ap.add_argument("--n-layers", type=int, required=True, help="trunk plus head blocks (Meta's n_layers)")
    ap.add_argument("--n-heads", type=int, required=True)
    ap.add_argument("--n-kv-heads", type=int, default=None)
    ap.add_argument("--vocab", type=int, required=True)
    ap.add_argument("--n-future", type=int, default=4)
    ap.add_argument("--multiple-of", type=int, default=256)
    ap.add_argument("--ffn-dim-multiplier", type=float, default=None)
    ap.add_argument("--hidden", type=int, default=None, help="FFN size (default: Meta's rule); written as hidden_dim")
    ap.add_argument("--norm-eps", type=float, default=1e-5)
    ap.add_argument("--rope-theta", type=float, default=10000.0)
    ap.add_argument("--dtype", choices=["fp32", "bf16"], default="bf16")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--out", required=True)
    ap.add_argument("--zip64-from", type=int, default=U32, help=argparse.SUPPRESS)
    ap.add_argument("--check", action="store_true", help="compare with torch.load and torch.save (small shapes)")
    a = ap.parse_args()
    if not 1 <= a.n_future <= a.n_layers or a.dim % a.n_heads:
        ap.error("need 1 <= n_future <= n_layers and dim divisible by n_heads")
    table, dtype = write(a)
    if a.check:
        check(a, table, dtype)


if __name__ == "__main__":
    main()
