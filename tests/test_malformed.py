#!/usr/bin/python3
"""test_malformed.py: the CLI's error contract on a corpus of bad inputs.

Run from the repo root (tests/test_malformed.sh does):
    /usr/bin/python3 tests/test_malformed.py --mtp build/mtp

The contract (`mtp --help`): exit status 1 for a bad input file, 2 for bad usage, each
with a one-line message on stderr that names the offending file or flag; never a crash
(no signal, no sanitizer report, no status >= 3) and never a half-written output.

In a temporary directory this builds GOOD files with tools/mtp_twin.py (a tiny GQA model:
dim 32, 3 layers = 1 trunk + 2 future heads, vocab 50, max_seq_len 32; a 2000-token shard;
its config as JSON), then breaks them one way at a time:
  model   safetensors files, each run through `mtp info F`, `mtp eval --model F` and
          `mtp train --model F` (truncations, header length, JSON, offsets, dtypes,
          shapes, tensor names, metadata and the config stored in it);
  shard   token shards via `mtp eval --data F` and `mtp train --config GOOD --data F`;
          uint32 shards (llm.c magic 20240801, version 7) the same way, and shard lists with
          one bad shard among good ones (the message must name the bad one);
  config  params.json files via `mtp train --config F`;
  resume  training-state directories via `mtp train --resume D`;
  usage   flags (exit 2);
  output  `--out` paths that cannot be written (exit 1, nothing half-written left);
  prepare `mtp prepare` inputs and outputs.
A few control runs on the GOOD files must succeed (exit 0), so a failure of the corpus
cannot come from broken GOOD files.

Every run is checked for: the exit status; stderr non-empty, exactly one line once an
optional leading backend announcement ("mtp: OpenBLAS ..." / "mtp: built-in matmul ...")
is set aside, and naming the file or flag; no "AddressSanitizer", "LeakSanitizer" or
"runtime error" (the suite also runs under ASan+UBSan); nothing on stdout when it fails;
for failing `train` runs, no model.safetensors, state.safetensors or *.tmp.* file left in
its --out directory. Prints one line per run (PASS/FAIL and its name, with the reason on
failure) and ends with exactly `N passed, M failed, K skipped`; exit 1 if M > 0.
"""

import argparse
import concurrent.futures
import json
import os
import re
import struct
import subprocess
import sys
import tempfile
import time

import numpy as np

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "tools"))
import mtp_twin as twin  # noqa: E402
from tally import Tally  # noqa: E402 (tests/, this script's folder)

CFG = dict(dim=32, n_layers=3, n_heads=4, n_kv_heads=2, vocab_size=50, hidden_dim=48, max_seq_len=32,
           n_future_tokens=2)
N_TOKENS = 2000
# Tiny runs: one step of 2 x 8 tokens, one eval batch.
TRAIN_ARGS = ["--batch", "2", "--seq", "8", "--steps", "1", "--threads", "1", "--quiet"]
EVAL_ARGS = ["--batch", "2", "--seq", "8", "--batches", "1", "--threads", "1", "--json"]
TIMEOUT_S = 60  # per run; generous for the sanitizer build
SANITIZER_MARKERS = ("AddressSanitizer", "LeakSanitizer", "runtime error", "UndefinedBehaviorSanitizer")
ANNOUNCE = re.compile(r"^mtp: (OpenBLAS|built-in matmul|note: OPENBLAS_CORETYPE)")


class Case:
    """One CLI run and what it must do."""

    def __init__(self, name, argv, rc, names, also=None, out_dir=None, absent=(), no_tmp_in=(), timeout=TIMEOUT_S,
                 env=None, present=()):
        self.name = name
        self.argv = argv
        self.rc = rc  # expected exit status
        self.names = names  # the message must contain one of these (the file or the flag)
        self.also = also  # if set, the message must also contain one of these
        self.out_dir = out_dir  # train --out: nothing may be left in it on failure
        self.absent = list(absent)  # paths that must not exist afterwards
        self.no_tmp_in = list(no_tmp_in)  # directories that must directly hold no *.tmp.* afterwards
        self.timeout = timeout
        self.env = env  # None: this process's environment (plus OMP_NUM_THREADS=1)
        self.present = list(present)  # paths that must exist afterwards


# ---------------------------------------------------------------------------------------
# Writers for well-formed and broken files
# ---------------------------------------------------------------------------------------


def st_layout(entries):
    """entries: [(name, dtype, shape, raw bytes)] -> (header dict of tensors, data bytes),
    the tensors contiguous in the given order."""
    header, blobs, off = {}, [], 0
    for name, dt, shape, raw in entries:
        header[name] = {"dtype": dt, "shape": list(shape), "data_offsets": [off, off + len(raw)]}
        blobs.append(raw)
        off += len(raw)
    return header, b"".join(blobs)


def st_header_bytes(header, meta):
    """JSON header bytes with __metadata__ first (meta None: no metadata object)."""
    full = {} if meta is None else {"__metadata__": meta}
    full.update(header)
    return json.dumps(full, separators=(",", ":")).encode()


def st_bytes(hjson, data, length=None, pad=True):
    """u64 LE header length, the header (space-padded to 8), the data. length overrides
    the stored header length."""
    if pad:
        hjson += b" " * (-len(hjson) % 8)
    return struct.pack("<Q", len(hjson) if length is None else length) + hjson + data


def shard_bytes(tokens, magic=twin.SHARD_MAGIC, version=twin.SHARD_VERSION, count=None, dtype="<u2"):
    tokens = np.asarray(tokens)
    header = np.zeros(256, dtype="<i4")
    header[:3] = (magic, version, len(tokens) if count is None else count)
    return header.tobytes() + tokens.astype(dtype).tobytes()


class Corpus:
    def __init__(self, root):
        self.root = root
        self.n = 0

    def path(self, stem, ext):
        self.n += 1
        return os.path.join(self.root, f"{self.n:03d}_{stem}{ext}")

    def write(self, stem, ext, data):
        p = self.path(stem, ext)
        with open(p, "wb") as f:
            f.write(data)
        return p

    def outdir(self, stem):
        self.n += 1
        return os.path.join(self.root, "out", f"{self.n:03d}_{stem}")


# ---------------------------------------------------------------------------------------
# The corpus
# ---------------------------------------------------------------------------------------


def build_cases(tmp):
    cases = []
    C = Corpus(tmp)
    os.makedirs(os.path.join(tmp, "out"))

    # --- GOOD files ---
    cfg = twin.Config(**CFG)
    model = twin.MTPModel(cfg)
    twin.init_params(model, seed=1)
    tensors = twin.model_tensors(model)
    meta = {"format": "mtp", "config": cfg.to_json()}
    good_model = os.path.join(tmp, "good.safetensors")
    twin.save_safetensors(good_model, tensors, meta)
    good_cfg = os.path.join(tmp, "good.json")
    with open(good_cfg, "w") as f:
        f.write(cfg.to_json())
    tokens = np.random.RandomState(0).randint(0, CFG["vocab_size"], N_TOKENS)
    good_shard = os.path.join(tmp, "good.bin")
    twin.write_shard(good_shard, tokens)
    with open(good_model, "rb") as f:
        good_bytes = f.read()

    entries = [(k, "F32", v.shape, np.ascontiguousarray(v, dtype="<f4").tobytes()) for k, v in tensors.items()]
    base_header, base_data = st_layout(entries)
    hlen = struct.unpack("<Q", good_bytes[:8])[0]

    def train_case(name, args, rc, names, also=None, **kw):
        out = C.outdir(name.replace("/", "_"))
        cases.append(Case(name, ["train"] + args + TRAIN_ARGS + ["--out", out], rc, names, also, out_dir=out, **kw))

    def eval_case(name, args, rc, names, also=None):
        cases.append(Case(name, ["eval"] + args + EVAL_ARGS, rc, names, also))

    # --- controls: the GOOD files work ---
    cases.append(Case("control: info GOOD", ["info", good_model], 0, []))
    eval_case("control: eval GOOD", ["--model", good_model, "--data", good_shard], 0, [])
    train_case("control: train --model GOOD", ["--model", good_model, "--data", good_shard], 0, [])
    train_case("control: train --config GOOD", ["--config", good_cfg, "--data", good_shard], 0, [])
    one_tok = C.write("shard_one_token", ".bin", shard_bytes([7]))
    train_case("control: train on a 1-token shard (windows wrap)", ["--config", good_cfg, "--data", one_tok], 0, [])

    # Valid files that take the reader's less common paths: F16 and BF16 tensors, and a
    # header length that is not a multiple of 8 (every tensor unaligned in the mapping).
    def bf16(a):
        return (np.ascontiguousarray(a, dtype="<f4").view("<u4") >> 16).astype("<u2").tobytes()
    mixed = []
    for i, (n, d, shp, r) in enumerate(entries):
        a = tensors[n]
        mixed.append((n, "F16", shp, a.astype("<f2").tobytes()) if i % 3 == 1 else
                     (n, "BF16", shp, bf16(a)) if i % 3 == 2 else (n, d, shp, r))
    h, dd = st_layout(mixed)
    ok_models = [("F16 and BF16 tensors", C.write("model_f16_bf16", ".safetensors", st_bytes(st_header_bytes(h, meta), dd)))]
    hj = st_header_bytes(base_header, meta)
    hj += b" " * (-len(hj) % 8 + 3)  # length = 3 mod 8
    ok_models.append(("unaligned data (header length 3 mod 8)",
                      C.write("model_unaligned", ".safetensors", st_bytes(hj, base_data, pad=False))))
    # An 8-bit model (docs/formats.md): every matrix as I8 with its F16 block scales.
    def q8(a):
        rows, cols = a.shape
        nb = (cols + 31) // 32
        pad = np.zeros((rows, nb * 32), dtype=np.float32)
        pad[:, :cols] = a
        blocks = pad.reshape(rows, nb, 32)
        scale = (np.abs(blocks).max(axis=2) / 127).astype("<f2")
        sf = scale.astype(np.float32)[:, :, None]
        q = np.clip(np.round(np.divide(blocks, sf, out=np.zeros_like(blocks), where=sf != 0)), -127, 127)
        return q.reshape(rows, nb * 32)[:, :cols].astype(np.int8).tobytes(), scale.tobytes(), (rows, nb)
    q8_entries = []
    for n, d, shp, r in entries:
        if len(shp) != 2:
            q8_entries.append((n, d, shp, r))
            continue
        qb, sb, sshape = q8(tensors[n])
        q8_entries += [(n, "I8", shp, qb), (n + "_scale", "F16", sshape, sb)]
    h, dd = st_layout(q8_entries)
    ok_models.append(("8-bit matrices", C.write("model_q8", ".safetensors", st_bytes(st_header_bytes(h, meta), dd))))
    for name, p in ok_models:
        cases.append(Case(f"control: generate, {name}", ["generate", "--model", p, "--prompt-tokens", "1,2", "-n",
                                                         "3", "--quiet"], 0, []))
        cases.append(Case(f"control: info, {name}", ["info", p], 0, []))
        eval_case(f"control: eval, {name}", ["--model", p, "--data", good_shard], 0, [])
        train_case(f"control: train, {name}", ["--model", p, "--data", good_shard], 0, [])

    # A finished run to resume from (made now: the resume cases need its state file).
    run_dir = os.path.join(tmp, "run")
    setup = subprocess.run([MTP, "train", "--config", good_cfg, "--data", good_shard] + TRAIN_ARGS +
                           ["--out", run_dir], capture_output=True, text=True, timeout=TIMEOUT_S)
    if setup.returncode != 0:
        raise SystemExit(f"setup: could not train the run to resume from: {setup.stderr.strip()}")
    state_tensors, state_meta = twin.load_safetensors(os.path.join(run_dir, "state.safetensors"))

    # =====================================================================================
    # model safetensors: each through info, eval --model, train --model
    # =====================================================================================
    models = []  # (name, path, also)

    def model_file(name, data, also=None):
        models.append((name, C.write("model_" + re.sub(r"\W+", "_", name), ".safetensors", data), also))

    def model_from(name, header, data=base_data, meta=meta, also=None):
        model_file(name, st_bytes(st_header_bytes(header, meta), data), also)

    def model_entries(name, ents, meta=meta, also=None):
        h, d = st_layout(ents)
        model_from(name, h, d, meta, also)

    def edit_header(fn):
        """A deep copy of the base header, edited by fn."""
        h = json.loads(json.dumps(base_header))
        fn(h)
        return h

    models.append(("missing file", os.path.join(tmp, "no_such_model.safetensors"), None))
    model_file("empty file", b"")
    model_file("truncated inside the header length", good_bytes[:4])
    model_file("truncated right after the header length", good_bytes[:8])
    model_file("truncated inside the header", good_bytes[:8 + 40])
    model_file("truncated at the end of the header", good_bytes[:8 + hlen])
    model_file("truncated inside the data", good_bytes[:8 + hlen + 100])
    model_file("truncated by one byte", good_bytes[:-1])
    model_file("header length 0", struct.pack("<Q", 0) + good_bytes[8:])
    model_file("header length 2^64-1", struct.pack("<Q", 2**64 - 1) + good_bytes[8:])
    model_file("header length 2^63", struct.pack("<Q", 2**63) + good_bytes[8:])
    model_file("header length 4 GiB", struct.pack("<Q", 2**32) + good_bytes[8:])
    model_file("header length 1 past the file end", struct.pack("<Q", len(good_bytes) - 7) + good_bytes[8:])
    model_file("header length 16 short (JSON cut)", struct.pack("<Q", hlen - 16) + good_bytes[8:])
    model_file("header not JSON", st_bytes(b"this is not JSON, it is a sentence.", base_data))
    model_file("header a JSON array", st_bytes(b"[1,2,3]", base_data))
    model_file("header a JSON string", st_bytes(b'"hello"', base_data))
    model_file("header JSON nested 100000 deep", st_bytes(b"[" * 100000, b""))
    model_file("header with garbage after the JSON", st_bytes(st_header_bytes(base_header, meta) + b"xyz", base_data))
    model_file("header padded with NUL bytes", st_bytes(st_header_bytes(base_header, meta) + b"\0" * 8, base_data,
                                                         pad=False))
    model_file("header is {} and no data", st_bytes(b"{}", b""))

    last = list(base_header)[-1]
    first = list(base_header)[0]

    def shift(name, by):
        def fn(h):
            h[name]["data_offsets"] = [o + by for o in h[name]["data_offsets"]]
        return fn

    model_from("offsets outside the file (last tensor +4)", edit_header(shift(last, 4)))
    model_from("offsets far outside the file", edit_header(
        lambda h: h[last].__setitem__("data_offsets", [2**50, 2**50 + 4 * CFG["vocab_size"] * CFG["dim"]])))
    model_from("offsets beyond 2^53", edit_header(
        lambda h: h[last].__setitem__("data_offsets", [2**60, 2**60 + 4 * CFG["vocab_size"] * CFG["dim"]])))
    model_from("offsets overlapping (wo = wq's bytes)", edit_header(
        lambda h: h["layers.0.attention.wo.weight"].__setitem__(
            "data_offsets", list(h["layers.0.attention.wq.weight"]["data_offsets"]))))
    model_from("offsets overlapping by 4 bytes", edit_header(shift("layers.0.attention.wq.weight", -4)))

    def gap_after_first(h):
        for k in list(h)[1:]:
            shift(k, 4)(h)
    h = edit_header(gap_after_first)
    n0 = base_header[first]["data_offsets"][1]
    model_from("gap of 4 bytes between tensors", h, base_data[:n0] + b"\0" * 4 + base_data[n0:])
    model_from("trailing bytes after the last tensor", base_header, base_data + b"\0" * 4)
    model_from("offsets begin > end", edit_header(
        lambda h: h[first].__setitem__("data_offsets", h[first]["data_offsets"][::-1])))
    model_from("offsets negative", edit_header(lambda h: h[first].__setitem__("data_offsets", [-4, 0])))
    model_from("offsets fractional", edit_header(lambda h: h[first].__setitem__("data_offsets", [0.5, 6400.5])))
    model_from("offsets strings", edit_header(lambda h: h[first].__setitem__("data_offsets", ["0", "6400"])))
    model_from("offsets one number", edit_header(lambda h: h[first].__setitem__("data_offsets", [6400])))
    model_from("offsets three numbers", edit_header(lambda h: h[first].__setitem__("data_offsets", [0, 6400, 6400])))
    model_from("offsets missing", edit_header(lambda h: h[first].pop("data_offsets")))
    model_from("dtype x shape != bytes", edit_header(
        lambda h: h["layers.0.attention.wq.weight"].__setitem__("shape", [32, 31])))
    model_entries("bytes not a multiple of the dtype size",
                  [(n, d, s, r + b"\0\0") if n == "norm.weight" else (n, d, s, r) for n, d, s, r in entries])
    model_from("unknown dtype F8_E4M3", edit_header(lambda h: h[first].__setitem__("dtype", "F8_E4M3")))
    model_from("unknown dtype f32 (lower case)", edit_header(lambda h: h[first].__setitem__("dtype", "f32")))
    model_from("dtype a number", edit_header(lambda h: h[first].__setitem__("dtype", 4)))
    model_from("dtype missing", edit_header(lambda h: h[first].pop("dtype")))
    model_from("dtype I32 (not a float)", edit_header(lambda h: h["norm.weight"].__setitem__("dtype", "I32")))
    model_from("shape negative", edit_header(lambda h: h[first].__setitem__("shape", [-50, -32])))
    model_from("shape fractional", edit_header(lambda h: h[first].__setitem__("shape", [25.5, 64])))
    model_from("shape a string", edit_header(lambda h: h[first].__setitem__("shape", "50,32")))
    model_from("shape missing", edit_header(lambda h: h[first].pop("shape")))
    model_from("shape with 9 dims", edit_header(lambda h: h[first].__setitem__("shape", [1] * 7 + [50, 32])))
    model_from("shape overflowing the element count", edit_header(
        lambda h: h[first].__setitem__("shape", [2**53, 2**53, 2**53])))
    model_from("tensor entry not an object", edit_header(lambda h: h.__setitem__(first, 5)))

    model_entries("missing tensor layers.0.attention.wq.weight",
                  [e for e in entries if e[0] != "layers.0.attention.wq.weight"],
                  also=["layers.0.attention.wq.weight"])
    model_entries("missing tensor output.weight", [e for e in entries if e[0] != "output.weight"],
                  also=["output.weight"])
    model_entries("no tensors at all", [])
    model_from("wrong shape: wk transposed (16,32)->(32,16)", edit_header(
        lambda h: h["layers.0.attention.wk.weight"].__setitem__("shape", [32, 16])),
        also=["layers.0.attention.wk.weight"])
    model_from("wrong shape: norm.weight 1-D -> (4,8)", edit_header(
        lambda h: h["norm.weight"].__setitem__("shape", [4, 8])), also=["norm.weight"])
    model_from("wrong shape: norm.weight 1-D -> (1,1,32)", edit_header(
        lambda h: h["norm.weight"].__setitem__("shape", [1, 1, 32])), also=["norm.weight"])
    model_entries("wrong shape: norm.weight a scalar",
                  [(n, d, (), b"\0" * 4) if n == "norm.weight" else (n, d, s, r) for n, d, s, r in entries],
                  also=["norm.weight"])
    hj = st_header_bytes(base_header, meta)
    dup = b',"norm.weight":' + json.dumps(base_header["norm.weight"], separators=(",", ":")).encode() + b"}"
    model_file("duplicate tensor name", st_bytes(hj[:-1] + dup, base_data), also=["norm.weight"])
    model_file("duplicate __metadata__", st_bytes(hj[:-1] + b',"__metadata__":{}}', base_data))
    hj_meta_dup = hj.replace(b'"__metadata__":{', b'"__metadata__":{"format":"mtp",', 1)
    model_file("duplicate metadata key", st_bytes(hj_meta_dup, base_data), also=["format"])
    model_entries("extra unexpected tensor", entries + [("extra.weight", "F32", (4,), b"\0" * 16)],
                  also=["extra.weight"])
    model_entries("extra tensor of a deeper model", entries + [
        ("layers.7.attention_norm.weight", "F32", (32,), b"\0" * 128)], also=["layers.7.attention_norm.weight"])
    model_entries("extra zero-size tensor", entries + [("empty", "F32", (0,), b"")], also=["empty"])
    model_from("no metadata", base_header, meta=None)
    model_from("metadata without config", base_header, meta={"format": "mtp"})
    model_from("metadata not an object", base_header, meta="mtp")
    model_from("metadata value not a string", base_header, meta={"format": "mtp", "config": CFG})

    def cfg_meta(text):
        return {"format": "mtp", "config": text}

    def cfg_with(**kw):
        d = dict(CFG)
        for k, v in kw.items():
            if v is None:
                d.pop(k)
            else:
                d[k] = v
        return json.dumps(d)

    model_from("config not JSON", base_header, meta=cfg_meta('{"dim": 32, "n_layers":'))
    model_from("config a JSON array", base_header, meta=cfg_meta("[32, 3, 4]"))
    model_from("config empty string", base_header, meta=cfg_meta(""))
    model_from("config with garbage after the JSON", base_header, meta=cfg_meta(cfg_with() + "garbage"))
    model_from("config n_heads 5 does not divide dim 32", base_header, meta=cfg_meta(cfg_with(n_heads=5)))
    model_from("config n_kv_heads 3 does not divide n_heads 4", base_header, meta=cfg_meta(cfg_with(n_kv_heads=3)))
    model_from("config odd head_dim (n_heads 32)", base_header, meta=cfg_meta(cfg_with(n_heads=32)))
    model_from("config vocab_size 0", base_header, meta=cfg_meta(cfg_with(vocab_size=0)))
    model_from("config n_future_tokens 4 > n_layers 3", base_header, meta=cfg_meta(cfg_with(n_future_tokens=4)))
    model_from("config missing dim", base_header, meta=cfg_meta(cfg_with(dim=None)))
    model_from("config missing vocab_size", base_header, meta=cfg_meta(cfg_with(vocab_size=None)))
    model_from("config dim a string", base_header, meta=cfg_meta(cfg_with(dim="32")))
    model_from("config max_seq_len 0", base_header, meta=cfg_meta(cfg_with(max_seq_len=0)))
    model_from("config hidden_dim 64 (tensors are 48)", base_header, meta=cfg_meta(cfg_with(hidden_dim=64)))
    model_from("config n_layers 4 (tensors for 3)", base_header, meta=cfg_meta(cfg_with(n_layers=4)))
    model_from("config n_future_tokens 1 (tensors for 2)", base_header, meta=cfg_meta(cfg_with(n_future_tokens=1)))
    model_from("config vocab_size 60 (tensors for 50)", base_header, meta=cfg_meta(cfg_with(vocab_size=60)))
    # A 1 KiB file whose config asks for petabytes of weights.
    model_from("config too large to allocate", {}, b"", meta=cfg_meta(json.dumps(dict(
        dim=65536, n_layers=4096, n_heads=8, vocab_size=65536, hidden_dim=1 << 20))))
    models.append(("a directory", os.path.join(tmp, "out"), None))
    models.append(("a training state file", os.path.join(run_dir, "state.safetensors"), None))

    # 8-bit matrices whose scales are missing, misshapen or mistyped, or 8-bit where no
    # 8-bit tensor may be (a norm), or scales of a matrix that is not 8-bit
    mat = next(i for i, e in enumerate(q8_entries) if e[1] == "I8")

    def q8_edit(name, fn, also):
        ents = [list(e) for e in q8_entries]
        fn(ents)
        model_entries(name, [tuple(e) for e in ents], also=also)
    q8_edit("8-bit matrix without its scales", lambda es: es.pop(mat + 1), ["scales"])
    q8_edit("8-bit scales of the wrong shape", lambda es: es[mat + 1].__setitem__(2, (es[mat + 1][2][0] * 2, 1)),
            ["scales"])
    q8_edit("8-bit scales as F32", lambda es: es[mat + 1].__setitem__(1, "F32") or
            es[mat + 1].__setitem__(3, np.zeros(es[mat + 1][2], dtype="<f4").tobytes()), ["scales"])
    norm = next(i for i, e in enumerate(q8_entries) if len(e[2]) == 1)
    q8_edit("8-bit norm", lambda es: es[norm].__setitem__(1, "I8") or
            es[norm].__setitem__(3, bytes(int(np.prod(es[norm][2])))), ["I8"])
    q8_edit("scales of an F32 matrix", lambda es: es.__setitem__(mat, list(entries[[e[0] for e in entries].index(
        es[mat][0])])), ["unexpected"])
    for name, p, also in models:
        cases.append(Case(f"model/{name}: generate", ["generate", "--model", p, "--prompt-tokens", "1,2", "-n", "3"],
                          1, [p], also))
        cases.append(Case(f"model/{name}: info", ["info", p], 1, [p], also))
        eval_case(f"model/{name}: eval", ["--model", p, "--data", good_shard], 1, [p], also)
        train_case(f"model/{name}: train", ["--model", p, "--data", good_shard], 1, [p], also)

    # =====================================================================================
    # token shards: eval --data F, train --config GOOD --data F
    # =====================================================================================
    shards = []  # (name, path, also)

    def shard(name, data, also=None):
        shards.append((name, C.write("shard_" + re.sub(r"\W+", "_", name), ".bin", data), also))

    good_sb = shard_bytes(tokens)
    shards.append(("missing file", os.path.join(tmp, "no_such_shard.bin"), None))
    shard("empty file", b"")
    shard("shorter than the header (100 bytes)", good_sb[:100])
    shard("header only, 1 byte short", good_sb[:1023])
    shard("wrong magic", shard_bytes(tokens, magic=12345))
    shard("byte-swapped magic", shard_bytes(tokens, magic=struct.unpack("<i", struct.pack(">i", twin.SHARD_MAGIC))[0]))
    shard("wrong version 2", shard_bytes(tokens, version=2))
    shard("token count 0", shard_bytes(tokens, count=0))
    shard("token count 0, no tokens", shard_bytes([], count=0))
    shard("token count negative", shard_bytes(tokens, count=-5))
    shard("count larger than the file (truncated)", shard_bytes(tokens, count=N_TOKENS + 1))
    shard("count 2^31-1, file of 2000 tokens", shard_bytes(tokens, count=2**31 - 1))
    shard("truncated inside a token", good_sb[:-1])
    shard("trailing bytes", good_sb + b"\0\0")
    shard("one trailing byte", good_sb + b"\0")
    bad = tokens.copy()
    bad[1234] = CFG["vocab_size"]
    shard("token id == vocab_size", shard_bytes(bad), also=["out of range", str(CFG["vocab_size"])])
    bad = tokens.copy()
    bad[-1] = 65535
    shard("token id 65535 (last token)", shard_bytes(bad), also=["out of range", "65535"])
    shard("int32 tokens", shard_bytes(tokens, dtype="<i4"))
    shards.append(("a directory", os.path.join(tmp, "out"), None))

    for name, p, also in shards:
        eval_case(f"shard/{name}: eval", ["--model", good_model, "--data", p], 1, [p], also)
        train_case(f"shard/{name}: train", ["--config", good_cfg, "--data", p], 1, [p], also)
    bad_val = [s for s in shards if s[0] in ("missing file", "wrong magic", "token id == vocab_size")]
    for name, p, also in bad_val:
        train_case(f"shard/{name}: train --val", ["--config", good_cfg, "--data", good_shard, "--val", p], 1, [p],
                   also)

    # uint32 shards (llm.c's Llama 3 format: magic 20240801, version 7) and shard lists
    u32 = dict(magic=twin.SHARD32_MAGIC, version=twin.SHARD32_VERSION, dtype="<u4")
    good32 = C.write("shard32_good", ".bin", shard_bytes(tokens, **u32))
    eval_case("control: eval a uint32 shard", ["--model", good_model, "--data", good32], 0, [])
    eval_case("control: eval a list of a uint16 and a uint32 shard", ["--model", good_model, "--data",
              f"{good_shard},{good32}"], 0, [])
    shards32 = []
    good32_b = shard_bytes(tokens, **u32)

    def shard32(name, data, also=None):
        shards32.append((name, C.write("shard32_" + re.sub(r"\W+", "_", name), ".bin", data), also))

    shard32("version 1 with the uint32 magic", shard_bytes(tokens, **dict(u32, version=1)), ["version"])
    shard32("version 7 with the uint16 magic", shard_bytes(tokens, version=7), ["version"])
    shard32("truncated inside a token", good32_b[:-1], ["truncated"])
    shard32("truncated by a whole token", good32_b[:-4], ["truncated"])
    shard32("count larger than the file", shard_bytes(tokens, **dict(u32, count=N_TOKENS + 1)), ["truncated"])
    shard32("uint16 tokens under the uint32 magic", shard_bytes(tokens, **dict(u32, dtype="<u2")), ["truncated"])
    shard32("trailing bytes", good32_b + b"\0\0", ["trailing"])
    bad = tokens.copy()
    bad[777] = CFG["vocab_size"]
    shard32("token id == vocab_size", shard_bytes(bad, **u32), ["out of range", "position 777"])
    bad = tokens.astype(np.int64)
    bad[5] = 2**32 - 1
    shard32("token id 2^32-1", shard_bytes(bad, **u32), ["4294967295"])
    for name, p, also in shards32:
        eval_case(f"shard32/{name}: eval", ["--model", good_model, "--data", p], 1, [p], also)
        train_case(f"shard32/{name}: train", ["--config", good_cfg, "--data", p], 1, [p], also)
    # a list with one bad shard among good ones: the message names the bad one
    for name, p, also in [shards32[0], shards32[2], shards32[7], shards[4]]:
        lst = f"{good_shard},{p},{good32}"
        eval_case(f"shard list/good,{name},good: eval", ["--model", good_model, "--data", lst], 1, [p], also)
        train_case(f"shard list/good,{name},good: train", ["--config", good_cfg, "--data", lst], 1, [p], also)
        train_case(f"shard list/good,{name},good: train --val", ["--config", good_cfg, "--data", good_shard,
                   "--val", lst], 1, [p], also)
    nomatch = os.path.join(tmp, "no_such_*.bin")
    eval_case("shard list/a pattern matching nothing", ["--model", good_model, "--data", f"{good_shard},{nomatch}"],
              1, [nomatch], ["no file matches"])
    train_case("shard list/an empty entry", ["--config", good_cfg, "--data", f"{good_shard},,{good32}"], 1,
               [good_shard], ["empty entry"])

    # =====================================================================================
    # configs: train --config F
    # =====================================================================================
    configs = []

    def config(name, text, also=None):
        configs.append((name, C.write("config_" + re.sub(r"\W+", "_", name), ".json", text.encode()), also))

    configs.append(("missing file", os.path.join(tmp, "no_such_config.json"), None))
    config("empty file", "")
    config("not JSON", "dim = 32\nn_layers = 3\n")
    config("truncated JSON", cfg_with()[:20])
    config("JSON array", "[32, 3, 4, 50]")
    config("JSON string", '"dim"')
    config("JSON null", "null")
    config("JSON nested 100000 deep", "[" * 100000 + "]" * 100000)
    config("garbage after the JSON", cfg_with() + " garbage")
    config("dim negative", cfg_with(dim=-32))
    config("dim 0", cfg_with(dim=0))
    config("dim 1e300", cfg_with(dim=1e300))
    config("dim not divisible by n_heads (30/4)", cfg_with(dim=30))
    config("odd head_dim (12/4)", cfg_with(dim=12))
    config("n_kv_heads 3 does not divide n_heads 4", cfg_with(n_kv_heads=3))
    config("n_kv_heads 0", cfg_with(n_kv_heads=0))
    config("n_layers 2.5", cfg_with(n_layers=2.5))
    config("n_layers 0", cfg_with(n_layers=0))
    config("n_layers a string", cfg_with(n_layers="3"))
    config("dim a string", cfg_with(dim="32"))
    config("n_heads true", cfg_with(n_heads=True))
    config("vocab_size 0", cfg_with(vocab_size=0))
    config("vocab_size 2^24 + 1", cfg_with(vocab_size=(1 << 24) + 1))
    config("n_future_tokens 0", cfg_with(n_future_tokens=0))
    config("n_future_tokens 4 > n_layers 3", cfg_with(n_future_tokens=4))
    config("hidden_dim -1", cfg_with(hidden_dim=-1))
    config("max_seq_len -1", cfg_with(max_seq_len=-1))
    config("multiple_of 0 (no hidden_dim)", cfg_with(hidden_dim=None, multiple_of=0))
    config("norm_eps -1", cfg_with(norm_eps=-1))
    config("rope_theta 0", cfg_with(rope_theta=0))
    config("ffn_dim_multiplier a string", cfg_with(ffn_dim_multiplier="1.3"))
    config("missing dim", cfg_with(dim=None))
    config("missing n_heads", cfg_with(n_heads=None))
    config("too large to allocate", json.dumps(dict(dim=65536, n_layers=4096, n_heads=8, vocab_size=65536,
                                                    hidden_dim=1 << 20)))
    configs.append(("a directory", os.path.join(tmp, "out"), None))
    for name, p, also in configs:
        train_case(f"config/{name}", ["--config", p, "--data", good_shard], 1, [p], also)

    # =====================================================================================
    # resume: train --resume DIR
    # =====================================================================================
    def state_dir(stem, data=None, meta_edit=None, train_edit=None):
        d = C.outdir("resume_" + stem)
        os.makedirs(d)
        p = os.path.join(d, "state.safetensors")
        if data is not None:
            with open(p, "wb") as f:
                f.write(data)
        elif meta_edit or train_edit:
            m = dict(state_meta)
            if train_edit:
                tr = json.loads(m["train"])
                tr.update(train_edit)
                m["train"] = json.dumps(tr)
            if meta_edit:
                for k, v in meta_edit.items():
                    if v is None:
                        m.pop(k)
                    else:
                        m[k] = v
            twin.save_safetensors(p, state_tensors, m)
        return d

    with open(os.path.join(run_dir, "state.safetensors"), "rb") as f:
        state_bytes = f.read()
    resumes = [
        ("a directory with no state", state_dir("empty")),
        ("a missing directory", os.path.join(tmp, "no_such_run")),
        ("state truncated", state_dir("trunc", data=state_bytes[: len(state_bytes) // 2])),
        ("state is a model file", state_dir("model", data=good_bytes)),
        ("state step not a number", state_dir("step", meta_edit={"step": "abc"})),
        ("state step negative", state_dir("stepneg", meta_edit={"step": "-3"})),
        ("state without step", state_dir("nostep", meta_edit={"step": None})),
        ("state without train options", state_dir("notrain", meta_edit={"train": None})),
        ("state train options not JSON", state_dir("trainjson", meta_edit={"train": "{batch: 2"})),
        ("state train batch 0", state_dir("batch0", train_edit={"batch": 0})),
        ("state train batch a string", state_dir("batchstr", train_edit={"batch": "2"})),
        # Values a flag would refuse must not get in through the state file either.
        ("state train batch 1e8", state_dir("batchbig", train_edit={"batch": 1e8})),
        ("state train seq > max_seq_len", state_dir("seqbig", train_edit={"seq": 64})),
        ("state config invalid", state_dir("cfg", meta_edit={"config": cfg_with(n_heads=5)})),
        ("state config mismatches tensors", state_dir("cfgmis", meta_edit={"config": cfg_with(hidden_dim=64)})),
    ]
    # Valid resumes. Without --out the run is saved back into DIR; the second one runs with an
    # empty environment, so the argv strings sit at the very top of the stack (anything that
    # reads past the end of the --resume argument faults there).
    for name, env in (("with the default environment", None), ("with an empty environment", {})):
        d = C.outdir("resume_ok")
        os.makedirs(d)
        for f in ("state.safetensors", "model.safetensors"):
            with open(os.path.join(run_dir, f), "rb") as src, open(os.path.join(d, f), "wb") as dst:
                dst.write(src.read())
        cases.append(Case(f"control: resume a run without --out, {name}",
                          ["train", "--threads", "1", "--quiet", "--steps", "2", "--resume", d], 0, [], env=env,
                          present=[os.path.join(d, "metrics.jsonl")]))
    for name, d in resumes:
        out = C.outdir("resume_out")
        cases.append(Case(f"resume/{name}", ["train", "--resume", d, "--steps", "2", "--threads", "1", "--quiet",
                                             "--out", out], 1, [d], out_dir=out))

    # =====================================================================================
    # usage: exit 2, the message names the flag
    # =====================================================================================
    M, D = ["--model", good_model], ["--data", good_shard]
    G = ["--config", good_cfg] + D

    def usage(name, argv, names):
        cases.append(Case(f"usage/{name}", argv, 2, names))

    usage("unknown command", ["frobnicate"], ["frobnicate"])
    usage("train: unknown flag", ["train"] + G + ["--frobnicate", "1"], ["--frobnicate"])
    usage("eval: unknown flag", ["eval"] + M + D + ["--frobnicate"], ["--frobnicate"])
    usage("prepare: unknown flag", ["prepare", "--frobnicate", good_cfg], ["--frobnicate"])
    usage("bench train: unknown flag", ["bench", "train", "--frobnicate", "3"], ["--frobnicate"])
    usage("train: flag without its value", ["train"] + G + ["--batch"], ["--batch"])
    usage("train: unexpected argument", ["train"] + G + ["stray"], ["stray"])
    usage("train --batch 0", ["train"] + G + ["--batch", "0"], ["--batch"])
    usage("train --batch abc", ["train"] + G + ["--batch", "abc"], ["--batch"])
    usage("train --batch 2x", ["train"] + G + ["--batch", "2x"], ["--batch"])
    usage("train --batch 99999999999999999999", ["train"] + G + ["--batch", "99999999999999999999"], ["--batch"])
    usage("train --batch ''", ["train"] + G + ["--batch", ""], ["--batch"])
    usage("train --steps -1", ["train"] + G + ["--steps", "-1"], ["--steps"])
    usage("train --lr -1", ["train"] + G + ["--lr", "-1"], ["--lr"])
    usage("train --lr nan", ["train"] + G + ["--lr", "nan"], ["--lr"])
    usage("train --lr inf", ["train"] + G + ["--lr", "inf"], ["--lr"])
    usage("train --lr 1e400", ["train"] + G + ["--lr", "1e400"], ["--lr"])
    usage("train --beta2 1", ["train"] + G + ["--beta2", "1"], ["--beta2"])
    usage("train --grad-accum 0", ["train"] + G + ["--grad-accum", "0"], ["--grad-accum"])
    usage("train --threads 0", ["train"] + G + ["--threads", "0"], ["--threads"])
    usage("train --seed -1", ["train"] + G + ["--seed", "-1"], ["--seed"])
    usage("train --seed abc", ["train"] + G + ["--seed", "abc"], ["--seed"])
    usage("train --seq 64 > max_seq_len (--config)", ["train"] + G + ["--seq", "64"], ["--seq"])
    usage("train --seq 64 > max_seq_len (--model)", ["train"] + M + D + ["--seq", "64"], ["--seq"])
    usage("train both --config and --model", ["train"] + G + M, ["--config", "--model"])
    usage("train neither --config nor --model", ["train"] + D, ["--config", "--model"])
    usage("train without --data", ["train", "--config", good_cfg], ["--data"])
    usage("train --head-schedule foo", ["train"] + G + ["--head-schedule", "foo"], ["--head-schedule"])
    usage("train --lr-schedule foo", ["train"] + G + ["--lr-schedule", "foo"], ["--lr-schedule"])
    usage("train --head-weights 1,2,3 on a 2-head model", ["train"] + G + ["--head-weights", "1,2,3"],
          ["--head-weights"])
    usage("train --head-weights 1 on a 2-head model", ["train"] + M + D + ["--head-weights", "1"],
          ["--head-weights"])
    usage("train --head-weights 1,,2", ["train"] + G + ["--head-weights", "1,,2"], ["--head-weights"])
    usage("train --head-weights -1,1", ["train"] + G + ["--head-weights", "-1,1"], ["--head-weights"])
    usage("train --head-weights 65 values", ["train"] + G + ["--head-weights", ",".join(["1"] * 65)],
          ["--head-weights"])
    # --batch may change on resume only to keep the global batch (ranks x --batch)
    cases.append(Case("train --resume with another --batch", ["train", "--resume", run_dir, "--batch", "4"], 1,
                      ["--batch"]))
    usage("train --resume with --config", ["train", "--resume", run_dir, "--config", good_cfg], ["--config"])
    usage("train --out path too long", ["train"] + G + ["--out", os.path.join(tmp, "x" * 1100)], ["--out"])
    usage("train --data list too long", ["train", "--config", good_cfg, "--data", "/" + "d" * 17000], ["--data"])
    usage("eval without --data", ["eval"] + M, ["--data"])
    usage("eval without --model", ["eval"] + D, ["--model"])
    usage("eval --batch 0", ["eval"] + M + D + ["--batch", "0"], ["--batch"])
    usage("eval --batches 0", ["eval"] + M + D + ["--batches", "0"], ["--batches"])
    usage("eval --seq 64 > max_seq_len", ["eval"] + M + D + ["--seq", "64"], ["--seq"])
    usage("info without a file", ["info"], ["model file"])
    usage("info with two files", ["info", good_model, good_model], ["model file"])
    usage("bench foo", ["bench", "foo"], ["foo"])
    usage("bench train --steps 1", ["bench", "train", "--steps", "1"], ["--steps"])
    usage("bench train --dim abc", ["bench", "train", "--dim", "abc"], ["--dim"])
    usage("bench train --head-schedule foo", ["bench", "train", "--head-schedule", "foo"], ["--head-schedule"])
    usage("bench matmul --threads 0", ["bench", "matmul", "--threads", "0"], ["--threads"])
    B = ["bench", "decode"] + M + D + ["--prompts", "1", "--prompt-len", "4", "-n", "4"]
    usage("bench decode --draft 3 on a 2-head model", B + ["--draft", "3"], ["--draft"])
    usage("bench decode --draft 0", B + ["--draft", "0"], ["--draft"])
    usage("bench decode --draft with --shape", ["bench", "decode", "--shape", "1b", "--draft", "2"], ["--draft"])
    # Without the fix this runs the whole matmul benchmark (seconds): keep it bounded.
    usage("bench matmul --frobnicate", ["bench", "matmul", "--frobnicate"], ["--frobnicate"])
    usage("task poly --pause 65", ["task", "poly", "--print", "1", "--pause", "65"], ["--pause"])
    usage("task induction --pause 1", ["task", "induction", "--print", "1", "--pause", "1"], ["--pause"])
    usage("task poly --m 0", ["task", "poly", "--print", "1", "--m", "0"], ["--m"])
    usage("task poly without an action", ["task", "poly"], ["--print"])
    usage("experiment induction --pause 1", ["experiment", "induction", "--out", os.path.join(tmp, "exp_p"),
                                             "--pause", "1"], ["--pause"])
    usage("experiment poly --steps 0", ["experiment", "poly", "--out", os.path.join(tmp, "exp_s"), "--steps", "0"],
          ["--steps"])
    usage("experiment poly --preset huge", ["experiment", "poly", "--out", os.path.join(tmp, "exp_h"), "--preset",
                                            "huge"], ["--preset"])
    usage("experiment without --out", ["experiment", "poly"], ["--out"])
    noexp = os.path.join(tmp, "no_experiment_here")
    cases.append(Case("experiment --report-only where no experiment ran", ["experiment", "poly", "--out", noexp,
                                                                           "--report-only"], 1, [noexp],
                      absent=[noexp]))
    usage("experiment poly --steps 99999999 (more tokens than a shard)",
          ["experiment", "poly", "--out", os.path.join(tmp, "exp_big"), "--preset", "quick", "--steps", "9999999"],
          ["--steps"])
    usage("experiment poly --lr 0", ["experiment", "poly", "--out", os.path.join(tmp, "exp_l"), "--lr", "0"], ["--lr"])
    usage("prepare without --out", ["prepare", good_cfg], ["--out"])
    usage("prepare without inputs", ["prepare", "--out", os.path.join(tmp, "prep_none")], ["file or directory"])
    usage("prepare --val-fraction 0.9", ["prepare", "--out", os.path.join(tmp, "prep_vf"), "--val-fraction", "0.9",
                                         good_cfg], ["--val-fraction"])

    # =====================================================================================
    # outputs that cannot be written: exit 1, the path named, nothing half-written
    # =====================================================================================
    a_file = C.write("regular_file", ".txt", b"not a directory\n")

    def out_case(name, out, names, absent=(), no_tmp_in=()):
        cases.append(Case(f"output/{name}", ["train"] + G + TRAIN_ARGS + ["--out", out], 1, names,
                          absent=[os.path.join(out, "model.safetensors"), os.path.join(out, "state.safetensors")] +
                          list(absent), no_tmp_in=list(no_tmp_in)))

    out_case("--out under /proc", "/proc/forbidden_dir_xyz", ["/proc/forbidden_dir_xyz"])
    out_case("--out under a regular file", os.path.join(a_file, "sub"), [os.path.join(a_file, "sub")],
             no_tmp_in=[tmp])
    out_case("--out is a regular file", a_file, [a_file], no_tmp_in=[tmp])
    out_case("--out in a missing directory", os.path.join(tmp, "no", "such", "dir"),
             [os.path.join(tmp, "no", "such", "dir")])
    d = C.outdir("model_is_dir")
    os.makedirs(os.path.join(d, "model.safetensors"))
    cases.append(Case("output/model.safetensors is a directory", ["train"] + G + TRAIN_ARGS + ["--out", d], 1,
                      [os.path.join(d, "model.safetensors")], no_tmp_in=[d]))
    d = C.outdir("state_is_dir")
    os.makedirs(os.path.join(d, "state.safetensors"))
    cases.append(Case("output/state.safetensors is a directory", ["train"] + G + TRAIN_ARGS + ["--out", d], 1,
                      [os.path.join(d, "state.safetensors")], absent=[os.path.join(d, "model.safetensors")],
                      no_tmp_in=[d]))
    d = C.outdir("metrics_is_dir")
    os.makedirs(os.path.join(d, "metrics.jsonl"))
    cases.append(Case("output/metrics.jsonl is a directory", ["train"] + G + TRAIN_ARGS + ["--out", d], 1,
                      [os.path.join(d, "metrics.jsonl")], absent=[os.path.join(d, "model.safetensors"),
                                                                  os.path.join(d, "state.safetensors")],
                      no_tmp_in=[d]))

    # =====================================================================================
    # prepare: inputs and outputs
    # =====================================================================================
    text = C.write("prepare_text", ".txt", b"int main(void) { return 0; }\n" * 20)
    binary = C.write("prepare_binary", ".dat", b"\0\1\2\3" * 100)
    missing = os.path.join(tmp, "no_such_input.txt")
    cases.append(Case("prepare/missing input", ["prepare", "--out", os.path.join(tmp, "prep1"), text, missing], 1,
                      [missing], absent=[os.path.join(tmp, "prep1", "train.bin")]))
    cases.append(Case("prepare/only binary inputs", ["prepare", "--out", os.path.join(tmp, "prep2"), binary], 1,
                      [binary], absent=[os.path.join(tmp, "prep2", "train.bin")]))
    cases.append(Case("prepare/--out under a regular file", ["prepare", "--out", os.path.join(a_file, "sub"), text],
                      1, [os.path.join(a_file, "sub")], no_tmp_in=[tmp]))
    return cases


# ---------------------------------------------------------------------------------------
# Running and judging
# ---------------------------------------------------------------------------------------


def run_case(case, tmp):
    env = dict(os.environ, OMP_NUM_THREADS="1") if case.env is None else case.env
    try:
        p = subprocess.run([MTP] + case.argv, capture_output=True, timeout=case.timeout, cwd=tmp, env=env)
    except subprocess.TimeoutExpired:
        return [f"timed out after {case.timeout} s"], ""
    err = p.stderr.decode("utf-8", "replace")
    out = p.stdout.decode("utf-8", "replace")
    why = []
    if p.returncode < 0:
        why.append(f"killed by signal {-p.returncode}")
    elif p.returncode != case.rc:
        why.append(f"exit status {p.returncode}, expected {case.rc}")
    for marker in SANITIZER_MARKERS:
        if marker in err:
            why.append(f"sanitizer report ({marker})")
            break
    lines = [ln for ln in err.splitlines() if ln.strip()]
    if case.rc != 0:
        if not lines:
            why.append("stderr is empty")
        else:
            msg_lines = [ln for ln in lines if not ANNOUNCE.match(ln)]
            if len(msg_lines) != 1:
                why.append(f"{len(msg_lines)} message lines on stderr, expected 1")
            last = lines[-1]
            if case.names and not any(n in last for n in case.names):
                why.append("the message names none of: " + ", ".join(repr(n) for n in case.names))
            if case.also and not any(n in last for n in case.also):
                why.append("the message mentions none of: " + ", ".join(repr(n) for n in case.also))
        if out.strip():
            why.append("stdout is not empty: " + out.strip().splitlines()[0][:100])
        if case.out_dir and os.path.isdir(case.out_dir):
            for f in ("model.safetensors", "state.safetensors"):
                if os.path.exists(os.path.join(case.out_dir, f)):
                    why.append(f"left {f} in --out")
    elif p.returncode == 0 and case.out_dir and not os.path.exists(os.path.join(case.out_dir, "model.safetensors")):
        why.append("no model.safetensors written")
    for a in case.present:
        if not os.path.exists(a):
            why.append(f"did not write {a}")
    for a in case.absent:
        if os.path.exists(a):
            why.append(f"left {a}")
    # the folder itself only: cases run in parallel, and another case's output folder
    # below it may hold that case's temporary file at this very moment
    for d in case.no_tmp_in + ([case.out_dir] if case.out_dir else []):
        for f in os.listdir(d) if os.path.isdir(d) else []:
            if ".tmp." in f:
                why.append(f"left a temporary file {os.path.join(d, f)}")
    return why, err


def main():
    global MTP
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--mtp", default="build/mtp", help="the mtp binary")
    ap.add_argument("--jobs", type=int, default=min(8, max(2, os.cpu_count() or 2)), help="runs in parallel")
    ap.add_argument("-k", default="", help="only cases whose name contains this")
    ap.add_argument("-v", action="store_true", help="print stderr of every run")
    a = ap.parse_args()
    MTP = os.path.abspath(a.mtp)
    if not os.access(MTP, os.X_OK):
        print(f"test_malformed: {a.mtp} is not an executable (build it with make)", file=sys.stderr)
        return 1
    t0 = time.time()
    with tempfile.TemporaryDirectory(prefix="mtp-malformed-") as tmp:
        cases = [c for c in build_cases(tmp) if a.k in c.name]
        with concurrent.futures.ThreadPoolExecutor(a.jobs) as ex:
            results = list(ex.map(lambda c: run_case(c, tmp), cases))
        tally = Tally()
        for case, (why, err) in zip(cases, results):
            if why:
                tally.count(False)
                print(f"FAIL {case.name}: {'; '.join(why)}")
                print(f"     $ mtp {' '.join(x if len(x) < 80 else x[:77] + '...' for x in case.argv)}")
                for ln in err.strip().splitlines()[-4:]:
                    print(f"     stderr: {ln[:300]}")
            else:
                tally.count(True)
                print(f"PASS {case.name}")
                if a.v:
                    for ln in err.strip().splitlines():
                        print(f"     stderr: {ln[:300]}")
    print(f"({time.time() - t0:.1f} s)")
    return tally.summary()


MTP = None

if __name__ == "__main__":
    sys.exit(main())
