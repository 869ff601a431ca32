#!/usr/bin/python3
"""Meta's released multi-token checkpoints end to end, on a small fixture in the release's
exact layout (tools/make_meta_fixture.py: tokenizer.model at the root, each model folder
with consolidated.pth + params.json), judged by a second PyTorch reference written from
Meta's llama/model.py (tools/meta_model.py), not by the twin mtp was developed against.

What it proves, in order:

1. The reference is sound (runs today, needs nothing from mtp):
   - the fixture is the release's layout: params.json one line with sorted keys and the
     release's key set, consolidated.pth a zip torch.save of a plain dict holding exactly
     Meta's state-dict keys (+ rope.freqs in the Llama 2 style folder), the tokenizer a
     SentencePiece BPE model with Llama 2's ids and settings (unk 0, bos 1, eos 2, no pad,
     byte fallback, split digits, identity normalization keeps runs of spaces);
   - meta_model agrees with tools/mtp_twin.py on the same weights, every head (two
     independent readings of the model; relative difference <= 1e-5);
   - meta_model in fp32 agrees with itself in float64 (the size of fp32 noise, which sets
     the tolerance below); greedy() is deterministic and equals one teacher-forced
     forward over its own output (full recompute = one causal pass); return_all_heads=False
     is head 1 of the full output.
2. mtp's arithmetic on these weights (runs today): the state dict written as an mtp file by
   docs/formats.md's definition (Meta's names, config in the metadata) gives
   - per-head logits (tests/model_dump: the training forward) equal to meta_model's within
     the tolerance: |mtp - ref64| <= 10 x |torch32 - ref64| + 1e-6 x max|ref64| (max over
     every logit), i.e. mtp's fp32 is no less accurate, to a factor 10, than PyTorch's fp32
     at the same computation, both measured against float64 (about 4e-6 each here, bound
     ~4e-5, largest logit ~8); a real mistake moves logits by orders of magnitude more
     (rotary on split halves instead of interleaved pairs: 1e-2 of the largest logit even
     with untrained weights);
   - greedy decoding (--prompt-tokens, the SentencePiece ids with BOS) equal to
     meta_model.greedy, and --spec block / tree equal to --spec none, in f32, bf16, q8.
3. The release path (needs `mtp convert DIR|FILE.pth` and text prompts for tokenizer
   models, the coordinator's wiring; these checks fail until it is merged):
   - `mtp convert DIR/tiny_4 OUT --dtype f32` finds DIR/tokenizer.model and writes every
     checkpoint tensor bit for bit (FILE.pth given instead of DIR: the same tensors);
     --dtype bf16 equals torch's .to(torch.bfloat16) for matrices with norms in F32; a bf16
     checkpoint converts to bf16 unchanged and to f32 widened; q8 converts; `mtp info`
     reads every output;
   - the converted file's logits equal meta_model's (tolerance above);
   - `mtp generate --prompt TEXT -n 40 --spec none --json` gives meta_model.greedy's ids
     for [BOS] + sentencepiece.encode(TEXT), its "text" (and the text streamed without
     --json) is the continuation: the part of decode(prompt + ids) after decode(prompt),
     and block / tree give the same ids; in bf16 and q8, speculative equals plain;
   - the Llama 2 style single-head folder (no n_future_tokens, vocab_size -1, rope.freqs
     in the checkpoint) converts and decodes like meta_model;
   - malformed folders are refused with exit status 1, one line on stderr naming the file,
     and no output file: params.json missing; params.json whose shapes disagree with the
     tensors; a tensor missing; an extra tensor; no tokenizer.model (the message says
     where it looked or to pass --tokenizer; --tokenizer FILE then works); a
     consolidated.pth that is not a zip (torch's legacy format)."""
import json
import os
import struct
import subprocess
import sys
import tempfile
import zipfile

import numpy as np
import sentencepiece as spm
import torch

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, "..", "tools"))
import make_meta_fixture as fixture  # noqa: E402
import meta_model  # noqa: E402
import mtp_twin  # noqa: E402  (only for the cross-check of the two references)

from tally import Tally, mtp_binary  # noqa: E402

MTP = mtp_binary()
DUMP = os.path.join(os.path.dirname(MTP), "tests", "model_dump")
tally = Tally()
check = tally.check
PROMPTS = ("def fib(n):", '"""Record of phased-in')  # the second one the fixture half memorized
N_GEN = 40
RELEASE_KEYS = {"dim", "ffn_dim_multiplier", "multiple_of", "n_future_tokens", "n_heads", "n_kv_heads",
                "n_layers", "norm_eps", "rope_theta", "vocab_size"}  # 7B_1T_4/params.json's keys


def run(*args):
    return subprocess.run([MTP, *args], capture_output=True, text=True)


def one_line(r):
    return r.stderr.strip().replace("\n", " | ")


def read_st(path):
    """(tensors, metadata) of a safetensors file, by the format's definition (no library)."""
    raw = open(path, "rb").read()
    n = struct.unpack("<Q", raw[:8])[0]
    hdr = json.loads(raw[8:8 + n])
    data = raw[8 + n:]
    types = {"F32": torch.float32, "BF16": torch.bfloat16, "F16": torch.float16, "I8": torch.int8,
             "U8": torch.uint8, "I32": torch.int32, "I64": torch.int64}
    meta = hdr.pop("__metadata__", {}) or {}
    out = {}
    for name, t in hdr.items():
        b, e = t["data_offsets"]
        out[name] = torch.frombuffer(bytearray(data[b:e]), dtype=types[t["dtype"]]).reshape(t["shape"]) \
            if e > b else torch.zeros(t["shape"], dtype=types[t["dtype"]])
    return out, meta


def mtp_config(params, vocab):
    """The mtp config (docs/formats.md) of a release params.json, every size resolved."""
    a = meta_model.ModelArgs.from_params(dict(params, vocab_size=vocab))
    return {"dim": a.dim, "n_layers": a.n_layers, "n_heads": a.n_heads, "n_kv_heads": a.kv_heads,
            "vocab_size": vocab, "multiple_of": a.multiple_of, "ffn_dim_multiplier": a.ffn_dim_multiplier,
            "norm_eps": a.norm_eps, "rope_theta": a.rope_theta, "max_seq_len": a.max_seq_len,
            "n_future_tokens": a.n_future_tokens, "hidden_dim": a.ffn_hidden()}


def write_mtp_file(path, state, params, vocab):
    """An mtp model file of a release state dict, by docs/formats.md (F32, Meta's names)."""
    tensors = {k: v.float().numpy() for k, v in state.items() if k != "rope.freqs"}
    mtp_twin.save_safetensors(path, tensors, {"format": "mtp", "config": json.dumps(mtp_config(params, vocab))})


def mtp_logits(model_file, ids, n_future, tmp):
    """Per-head logits (T, n, V) of mtp's training forward over ids (tests/model_dump)."""
    shard, out = os.path.join(tmp, "ids.bin"), os.path.join(tmp, "dump.safetensors")
    T = len(ids) - n_future  # model_dump reads T + n_future tokens: every head gets a target
    mtp_twin.write_shard(shard, np.array(ids))
    if not os.path.exists(DUMP):
        print(f"  {DUMP} is not built (make builds every tests/*.c helper)")
        return None
    r = subprocess.run([DUMP, model_file, shard, "1", str(T), "sequential", out], capture_output=True, text=True)
    if r.returncode != 0:
        print("  model_dump:", r.stderr.strip()[-500:])
        return None
    d, _ = read_st(out)
    return torch.stack([d[f"logits.{i + 1}"][0] for i in range(n_future)], dim=1), T


def compare_logits(label, got, ref32, ref64):
    """got and ref32 against ref64 (all (T, n, V)); the tolerance of the docstring."""
    scale = float(ref64.abs().max())
    err_t = float((ref32.double() - ref64).abs().max())
    err_c = float((got.double() - ref64).abs().max())
    bound = 10 * err_t + 1e-6 * scale
    print(f"  {label}: max|logit| {scale:.2f}; vs float64: mtp {err_c:.2e}, torch fp32 {err_t:.2e} (bound {bound:.2e})")
    return check(got.shape == ref32.shape and err_c <= bound, f"{label}: logits off by {err_c:.3e} > {bound:.3e}")


def generate(model, *args, n=N_GEN):
    r = run("generate", "--model", model, "-n", str(n), "--json", "--threads", "2", "--quiet", *args)
    if r.returncode != 0:
        return None, one_line(r)
    try:
        return json.loads(r.stdout.strip().splitlines()[0]), ""
    except (ValueError, IndexError):
        return None, "not JSON: " + r.stdout[:200]


def same_greedy(toks, ref, eos):
    """mtp's ids equal the reference's: all N_GEN of them, or up to an EOS (which mtp may
    end on or leave out: generation stops there)."""
    if toks == ref:
        return True
    if eos in ref:
        cut = ref[:ref.index(eos) + 1]
        return toks in (cut, cut[:-1])
    return False


def expect_refusal(label, args, names, out, any_of=False):
    """exit 1, one stderr line containing each of `names` (or any one with any_of), no OUT."""
    r = run(*args)
    msg = r.stderr.strip()
    named = any(s in msg for s in names) if any_of else all(s in msg for s in names)
    check(r.returncode == 1 and named and len(msg.splitlines()) == 1 and not os.path.exists(out),
          f"{label}: exit {r.returncode}, stderr {msg!r}, output {'left' if os.path.exists(out) else 'absent'}")


with tempfile.TemporaryDirectory() as tmp:
    torch.manual_seed(0)
    rel = os.path.join(tmp, "release")
    params = fixture.make(rel, "fp32")
    sp = spm.SentencePieceProcessor(model_file=os.path.join(rel, "tokenizer.model"))
    V = sp.get_piece_size()
    d4, dl = os.path.join(rel, "tiny_4"), os.path.join(rel, "tiny_llama")
    state4 = torch.load(os.path.join(d4, "consolidated.pth"))
    statel = torch.load(os.path.join(dl, "consolidated.pth"))
    d4b = os.path.join(rel, "tiny_4_bf16")  # the same weights as Meta ships them: bf16
    fixture.write_release(d4b, state4, params["tiny_4"], "bf16")
    state4b = torch.load(os.path.join(d4b, "consolidated.pth"))

    # ---- 1. the fixture and the reference ---------------------------------------------
    text4 = open(os.path.join(d4, "params.json")).read()
    p4 = json.loads(text4)
    check(set(p4) == RELEASE_KEYS and text4 == json.dumps(p4, sort_keys=True) and p4["vocab_size"] == V
          and p4["n_future_tokens"] == 4 and p4["n_kv_heads"] < p4["n_heads"],
          f"tiny_4/params.json in the release's form: {text4}")
    pl = json.loads(open(os.path.join(dl, "params.json")).read())
    check("n_future_tokens" not in pl and "n_kv_heads" not in pl and pl["vocab_size"] == -1,
          f"tiny_llama/params.json is Llama 2's form: {pl}")
    a4 = meta_model.ModelArgs.from_params(p4)
    al = meta_model.ModelArgs.from_params(dict(pl, vocab_size=V))
    for name, st, want in (("tiny_4", state4, set(meta_model.expected_keys(a4))),
                           ("tiny_llama", statel, set(meta_model.expected_keys(al)) | {"rope.freqs"})):
        check(zipfile.is_zipfile(os.path.join(rel, name, "consolidated.pth")) and type(st) is dict
              and set(st) == want and all(t.dtype == torch.float32 for t in st.values()),
              f"{name}/consolidated.pth: a zip torch.save of a dict with exactly Meta's keys")
    check(all(t.dtype == torch.bfloat16 for t in state4b.values()), "tiny_4_bf16: every tensor bf16")
    check(a4.ffn_hidden() == 192 and meta_model.ModelArgs(dim=4096).ffn_hidden() == 11008,
          "FFN width rule: 192 here, 11008 for Llama 2 7B")
    check((sp.unk_id(), sp.bos_id(), sp.eos_id(), sp.pad_id()) == (0, 1, 2, -1) and V == 512,
          "tokenizer ids: unk 0, bos 1, eos 2, no pad; 512 pieces")
    check(sp.piece_to_id("<0x0A>") != sp.unk_id() and sp.is_byte(sp.piece_to_id("<0x0A>"))
          and sp.encode("\u4e2d")[-3:] == [sp.piece_to_id(f"<0x{b:02X}>") for b in "\u4e2d".encode()],
          "tokenizer: byte fallback (an unseen character is its UTF-8 bytes)")
    check(all(len(sp.id_to_piece(i).strip("\u2581")) == 1 for i in sp.encode("1234567890")[1:]),
          "tokenizer: digits split")
    odd = "x  =   1\n\n    y\t=2  "
    check(sp.decode(sp.encode(odd)) == odd and sp.id_to_piece(sp.encode("a")[0]).startswith("\u2581"),
          "tokenizer: identity normalization keeps whitespace; dummy prefix")

    ids = [sp.bos_id()] + sp.encode(open("/usr/lib/python3.11/__future__.py").read()
                                     if os.path.exists("/usr/lib/python3.11/__future__.py") else "def f(x):\n  return x\n")[:60]
    x = torch.tensor([ids])
    m4 = meta_model.build(a4, state4)
    ref32 = m4(x)[0]  # (T, 4, V)
    ref64 = meta_model.build(a4, state4).double()(x)[0]  # the same model in float64
    check(ref32.shape == (len(ids), 4, V) and ref32.dtype == torch.float32, "forward: (B, T, n_future, V) fp32")
    err64 = float((ref32.double() - ref64).abs().max() / ref64.abs().max())
    check(err64 < 1e-5, f"meta_model fp32 vs float64: relative {err64:.2e}")
    d1 = float((m4(x, return_all_heads=False)[0, :, 0] - ref32[:, 0]).abs().max())
    check(m4(x, return_all_heads=False).shape == (1, len(ids), 1, V) and d1 <= 1e-6 * float(ref32.abs().max()),
          f"return_all_heads=False is head 1 ({d1:.1e}: the output product's shape differs)")

    cfg = mtp_twin.Config.from_dict(mtp_config(p4, V))
    twin = mtp_twin.build_model(cfg, {k: v.numpy() for k, v in state4.items()})
    with torch.no_grad():
        tw = torch.stack(twin(x), dim=2)[0]
    dtw = float((tw - ref32).abs().max() / ref32.abs().max())
    print(f"  meta_model vs mtp_twin: max relative difference {dtw:.2e}"
          f"{' (bit-identical)' if torch.equal(tw, ref32) else ''}")
    check(dtw <= 1e-5, f"meta_model and mtp_twin disagree: {dtw:.2e}")
    cfgl = mtp_twin.Config.from_dict(mtp_config(pl, V))
    twinl = mtp_twin.build_model(cfgl, {k: v.numpy() for k, v in statel.items() if k != "rope.freqs"})
    ml = meta_model.build(meta_model.ModelArgs.from_params(pl), statel)  # vocab -1: from the embeddings
    with torch.no_grad():
        dl_ = float((twinl(x)[0][0] - ml(x)[0, :, 0]).abs().max())
    check(ml.args.vocab_size == V and dl_ <= 1e-5 * float(ml(x).abs().max()),
          f"single-head: meta_model and mtp_twin agree ({dl_:.2e})")

    refs = {}
    for p in PROMPTS:
        pid = [sp.bos_id()] + sp.encode(p)
        g = m4.greedy(pid, N_GEN)
        forced = m4(torch.tensor([pid + g]), return_all_heads=False)[0, len(pid) - 1:-1, 0].argmax(-1).tolist()
        check(g == m4.greedy(pid, N_GEN) and forced == g and (p != PROMPTS[1] or len(set(g)) > 3),
              f"greedy {p!r}: deterministic, one causal pass agrees"
              f"{', not one repeated token' if p == PROMPTS[1] else ''} ({sp.decode(g)!r})")
        refs[p] = (pid, g)
    refl = {p: ml.greedy(refs[p][0], N_GEN) for p in PROMPTS}

    # ---- 2. mtp's arithmetic on the same weights (a file written by the format's definition)
    py32 = os.path.join(tmp, "py_f32.safetensors")
    write_mtp_file(py32, state4, p4, V)
    got = mtp_logits(py32, ids, 4, tmp)
    if check(got is not None, "model_dump reads the mtp file of the state dict"):
        lg, T = got
        compare_logits("mtp file of the state dict", lg, ref32[:T], ref64[:T])
    pyfiles = {"f32": py32}
    for t in ("bf16", "q8"):
        pyfiles[t] = os.path.join(tmp, f"py_{t}.safetensors")
        r = run("convert", py32, pyfiles[t], "--dtype", t)
        check(r.returncode == 0, f"convert the mtp file to {t}: {one_line(r)}")
    for t, f in pyfiles.items():
        for p in PROMPTS:
            pid, g = refs[p]
            plain, err = generate(f, "--prompt-tokens", ",".join(map(str, pid)), "--spec", "none")
            if not check(plain is not None, f"[{t}] generate --prompt-tokens: {err}"):
                continue
            if t == "f32":
                check(same_greedy(plain["tokens"], g, sp.eos_id()), f"[f32] {p!r}: mtp greedy {plain['tokens']} != meta_model {g}")
            for spec in ("block", "tree"):
                o, err = generate(f, "--prompt-tokens", ",".join(map(str, pid)), "--spec", spec)
                check(o is not None and o["tokens"] == plain["tokens"], f"[{t}] {p!r}: --spec {spec} != plain {err}")
            if t == "f32" and p == PROMPTS[1]:
                o, _ = generate(f, "--prompt-tokens", ",".join(map(str, pid)), "--spec", "block")
                print(f"  drafts accepted (f32, block, per depth): {o and o.get('accept')}")

    # ---- 3. the release path: mtp convert DIR|FILE.pth, text prompts --------------------
    out = {}
    for t in ("f32", "bf16", "q8"):
        out[t] = os.path.join(tmp, f"tiny_4_{t}.safetensors")
        r = run("convert", d4, out[t], "--dtype", t)
        check(r.returncode == 0 and os.path.exists(out[t]), f"convert {d4} --dtype {t}: {one_line(r)}")
    if os.path.exists(out["f32"]):
        got32, _ = read_st(out["f32"])
        extra = [k for k in got32 if k not in state4 and "tokenizer" not in k]
        check(not extra and all(k in got32 and got32[k].dtype == torch.float32 and torch.equal(got32[k], v)
                                for k, v in state4.items()),
              f"--dtype f32: every tensor bit for bit as torch.load gives it (extra: {extra[:3]})")
        got = mtp_logits(out["f32"], ids, 4, tmp)
        if check(got is not None, "model_dump reads the converted file"):
            compare_logits("converted tiny_4", got[0], ref32[:got[1]], ref64[:got[1]])
    viapth = os.path.join(tmp, "via_pth.safetensors")
    r = run("convert", os.path.join(d4, "consolidated.pth"), viapth, "--dtype", "f32")
    check(r.returncode == 0 and os.path.exists(viapth) and os.path.exists(out["f32"])
          and read_st(viapth)[0].keys() == read_st(out["f32"])[0].keys()
          and all(torch.equal(v, read_st(out["f32"])[0][k]) for k, v in read_st(viapth)[0].items()),
          f"convert FILE.pth: the same tensors as convert DIR: {one_line(r)}")
    if os.path.exists(out["bf16"]):
        gotb, _ = read_st(out["bf16"])
        check(all(k in gotb and torch.equal(gotb[k], v.to(torch.bfloat16) if v.dim() == 2 else v)
                  for k, v in state4.items()),
              "--dtype bf16: matrices are torch's .to(torch.bfloat16), norms F32 unchanged")
    for t in ("bf16", "f32"):
        o = os.path.join(tmp, f"from_bf16_{t}.safetensors")
        r = run("convert", d4b, o, "--dtype", t)
        ok = r.returncode == 0 and os.path.exists(o)
        if ok:
            g_, _ = read_st(o)
            ok = all(k in g_ and torch.equal(g_[k], v if (t == "bf16" and v.dim() == 2) else v.float())
                     for k, v in state4b.items())
        check(ok, f"bf16 checkpoint --dtype {t}: {'unchanged' if t == 'bf16' else 'widened'} {one_line(r)}")
    for t, f in out.items():
        r = run("info", f)
        check(r.returncode == 0 and f"vocab_size {V}" in r.stdout and "max_seq_len 4096" in r.stdout and
              f"tokenizer: SentencePiece, {V} ids, BOS 1 (added to prompts), EOS 2" in r.stdout,
              f"mtp info {t}: config (no max_seq_len in params.json: 4096) and tokenizer: {one_line(r)}")

    for t, f in out.items():
        if not os.path.exists(f):
            check(False, f"[{t}] no converted file to decode")
            continue
        for p in PROMPTS:
            pid, g = refs[p]
            plain, err = generate(f, "--prompt", p, "--spec", "none")
            if not check(plain is not None, f"[{t}] generate --prompt {p!r}: {err}"):
                continue
            toks = plain["tokens"]
            if t == "f32":
                check(same_greedy(toks, g, sp.eos_id()), f"[f32] --prompt {p!r}: {toks} != meta_model.greedy {g}")
            whole, head = sp.decode(pid[1:] + toks), sp.decode(pid[1:])
            cont = whole[len(head):] if whole.startswith(head) else None
            check(plain.get("text") == cont,
                  f"[{t}] {p!r}: text {plain.get('text')!r} != the continuation sentencepiece decodes {cont!r}")
            r = run("generate", "--model", f, "--prompt", p, "--spec", "block", "-n", str(N_GEN), "--quiet",
                    "--threads", "2")
            check(r.returncode == 0 and r.stdout == cont,
                  f"[{t}] {p!r}: streamed text {r.stdout!r} != {cont!r}")
            for spec in ("block", "tree"):
                o, err = generate(f, "--prompt", p, "--spec", spec)
                check(o is not None and o["tokens"] == toks, f"[{t}] --prompt {p!r} --spec {spec} != plain {err}")

    ol = os.path.join(tmp, "tiny_llama.safetensors")
    r = run("convert", dl, ol, "--dtype", "f32")
    if check(r.returncode == 0, f"convert the Llama 2 style folder (rope.freqs, vocab_size -1): {one_line(r)}"):
        gl, _ = read_st(ol)
        check(all(torch.equal(gl.get(k, torch.empty(0)), v) for k, v in statel.items() if k != "rope.freqs")
              and not any(k.startswith("extra_heads") for k in gl), "Llama 2 style: the tensors, one head")
        for p in PROMPTS:
            o, err = generate(ol, "--prompt", p, "--spec", "none")
            check(o is not None and same_greedy(o["tokens"], refl[p], sp.eos_id()), f"Llama 2 style {p!r}: {o and o['tokens']} != {refl[p]} {err}")

    # malformed release folders
    import shutil

    def broken(name, state=None, params_txt=None, tokenizer=True, raw_pth=None):
        root = os.path.join(tmp, "bad_" + name)
        folder = os.path.join(root, "m")
        os.makedirs(folder)
        if tokenizer:
            shutil.copy(os.path.join(rel, "tokenizer.model"), root)
        if raw_pth is not None:
            raw_pth(os.path.join(folder, "consolidated.pth"))
        else:
            torch.save(state if state is not None else state4, os.path.join(folder, "consolidated.pth"))
        if params_txt is not None:
            open(os.path.join(folder, "params.json"), "w").write(params_txt)
        return folder

    badout = os.path.join(tmp, "bad.safetensors")
    f = broken("noparams")
    expect_refusal("params.json missing", ("convert", f, badout, "--dtype", "f32"), ["params.json"], badout)
    f = broken("shape", params_txt=json.dumps(dict(p4, dim=128), sort_keys=True))
    expect_refusal("params.json shapes disagree", ("convert", f, badout, "--dtype", "f32"),
                   ["params.json", "consolidated.pth"], badout, any_of=True)
    f = broken("heads", params_txt=json.dumps(dict(p4, n_future_tokens=2), sort_keys=True))
    expect_refusal("params.json n_future_tokens disagrees", ("convert", f, badout, "--dtype", "f32"),
                   ["params.json", "consolidated.pth"], badout, any_of=True)
    missing = {k: v for k, v in state4.items() if k != "layers.1.attention.wk.weight"}
    f = broken("missing", missing, text4)
    expect_refusal("a tensor missing", ("convert", f, badout, "--dtype", "f32"), ["consolidated.pth"], badout)
    f = broken("extra", dict(state4, **{"extra_heads.3.ffn_norm.weight": torch.ones(64)}), text4)
    expect_refusal("an extra tensor", ("convert", f, badout, "--dtype", "f32"), ["consolidated.pth"], badout)
    f = broken("notok", state4, text4, tokenizer=False)
    r = run("convert", f, badout, "--dtype", "f32")
    msg = r.stderr.strip()
    check(r.returncode == 1 and "tokenizer.model" in msg and (os.path.dirname(f) in msg or "--tokenizer" in msg)
          and len(msg.splitlines()) == 1 and not os.path.exists(badout), f"no tokenizer.model: {r.returncode} {msg!r}")
    r = run("convert", f, badout, "--dtype", "f32", "--tokenizer", os.path.join(rel, "tokenizer.model"))
    check(r.returncode == 0 and os.path.exists(badout), f"--tokenizer FILE: {one_line(r)}")
    if os.path.exists(badout):
        os.unlink(badout)
    f = broken("legacy", params_txt=text4,
               raw_pth=lambda p: torch.save(state4, p, _use_new_zipfile_serialization=False))
    expect_refusal("consolidated.pth not a zip", ("convert", f, badout, "--dtype", "f32"), ["consolidated.pth"], badout)

raise SystemExit(tally.summary())
