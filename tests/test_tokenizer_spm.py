#!/usr/bin/env python3
"""`mtp tokenize` on SentencePiece models against SentencePiece itself (Debian's
python3-sentencepiece), on models trained here with spm_train from text the machine's
packages install (nothing downloaded):
- the same ids as sp.EncodeAsIds, and the same pieces, for Llama 2's settings (BPE, byte
  fallback, identity normalizer), a default BPE model (nmt_nfkc, extra spaces removed), one
  without byte fallback (unknown runs merge into one unk), user-defined and control
  symbols, whitespace as suffix, and unigram models, on code, prose in many scripts,
  emoji, rare characters, whitespace runs, digits, invalid UTF-8 and thousands of lines
  of real files;
- the same text as sp.DecodeIds for those ids and for random id sequences (control, unk
  and byte pieces that split characters); every decode is also streamed one id at a time
  by the command, which fails if the two differ;
- corrupt models (truncated, flipped bytes, huge lengths, bad wire types) refused with
  exit 1 and one line naming the file, never a crash; bad flags exit 2."""
import glob
import json
import os
import random
import subprocess
import tempfile

import sentencepiece as spm

from tally import Tally, mtp_binary

MTP = mtp_binary()
tally = Tally()
check = tally.check
tmp = tempfile.mkdtemp(prefix="mtp-spm-")


def run(*args):
    return subprocess.run([MTP, "tokenize", *args], capture_output=True)


def corpus():
    """Licences, Python sources and docs: prose and code the machine has."""
    parts = sorted(glob.glob("/usr/share/common-licenses/*"))
    parts += sorted(glob.glob("/usr/lib/python3.11/email/*.py"))[:12]
    parts += sorted(glob.glob("/usr/lib/python3.11/json/*.py"))
    out = bytearray()
    for p in parts:
        if os.path.isfile(p):
            out += open(p, "rb").read()
    # a little of many scripts, so that each gets some pieces (a few lines, each repeated)
    scripts = ["Zürich café naïve façade über straße", "Привет мир, как дела?",
               "Καλημέρα κόσμε", "你好世界，今天天气很好。", "こんにちは世界", "مرحبا بالعالم",
               "नमस्ते दुनिया", "안녕하세요 세계"]
    out += ("\n".join(scripts * 20) + "\n").encode()
    path = os.path.join(tmp, "corpus.txt")
    open(path, "wb").write(out)
    return path


LLAMA = ["--model_type=bpe", "--byte_fallback=true", "--split_digits=true",
         "--add_dummy_prefix=true", "--normalization_rule_name=identity",
         "--remove_extra_whitespaces=false", "--allow_whitespace_only_pieces=true",
         "--unk_id=0", "--bos_id=1", "--eos_id=2", "--pad_id=-1", "--character_coverage=0.9995"]
MODELS = {
    "llama": LLAMA + ["--vocab_size=3000"],
    "bpe_default": ["--model_type=bpe", "--vocab_size=2000"],
    "bpe_user": ["--model_type=bpe", "--vocab_size=1500", "--byte_fallback=true",
                 "--user_defined_symbols=<tag>,foo,foobar,@@,日本",
                 "--control_symbols=<ctl>", "--normalization_rule_name=nfkc_cf"],
    "bpe_suffix": ["--model_type=bpe", "--vocab_size=1200", "--treat_whitespace_as_suffix=true",
                   "--remove_extra_whitespaces=false", "--normalization_rule_name=identity"],
    "unigram": ["--model_type=unigram", "--vocab_size=2000"],
    "unigram_bytes": ["--model_type=unigram", "--vocab_size=1500", "--byte_fallback=true",
                      "--user_defined_symbols=<tag>,foo", "--normalization_rule_name=identity",
                      "--remove_extra_whitespaces=false", "--split_digits=true"],
}


def train(name, opts, text):
    prefix = os.path.join(tmp, name)
    r = subprocess.run(["spm_train", f"--input={text}", f"--model_prefix={prefix}",
                        "--num_threads=1", "--minloglevel=2", *opts], capture_output=True)
    if r.returncode:
        raise SystemExit(f"spm_train {name} failed: {r.stderr.decode()[-400:]}")
    return prefix + ".model"


TEXTS = [
    "Hello world", "hello", " leading space", "trailing space ", "  two leading", "double  space",
    "   ", " ", "a", "\t tab\tand  spaces\t", "x\ty", "digits 1234567890 3.14159 2024-01-01",
    "def main(argv):\n    return sum(x * 2 for x in argv)  # comment\n",
    "#include <stdio.h>\nint main(void) { printf(\"%d\\n\", 42); return 0; }\n",
    "for (int i = 0; i < n; i++) {\n\t\tbuf[i] = (char)i;\n}\n",
    "Zürich café naïve façade coöperate résumé", "Привет, мир! Как дела?", "Καλημέρα κόσμε",
    "你好世界，今天天气很好。", "こんにちは世界", "مرحبا بالعالم", "नमस्ते दुनिया", "안녕하세요",
    "emoji 😀 🎉 👍🏽 🇫🇷 👨‍👩‍👧‍👦 🧑🏿‍🚀", "rare: ∮ ℵ ☃ ᚠᛇᚻ 𝔘𝔫𝔦𝔠𝔬𝔡𝔢 𓂀 ⟁",
    "full-width ＡＢＣ１２３ ｶﾀｶﾅ ﬁ ligature ½ ²", "\u2581 literal lower block \u2581\u2581",
    "U+FFFD \ufffd itself", "control \x01\x02 chars \x7f", "nul \x00 byte",
    "<tag> foo foobar foofoo @@x 日本語 <ctl> <s> </s> <unk>", "\n\n\nempty lines\n\n",
    "line one\nline two\r\nline three\r\n", "end with newline\n", "a" * 300,
    "  ".join(["word"] * 50), "mixed 中文 and English and русский text",
    "x" + "\u0301" * 5 + " combining", "Ǆ ǅ ǆ Å Å (composed vs decomposed)",
]
INVALID = [b"ab\xffcd", b"\xe2\x96", b"trunc \xe2\x82", b"\xc0\xaf overlong", b"\xed\xa0\x80 surrogate",
           b"\xf4\x90\x80\x80 too big", b"\x80\x80\x80", b"ok \xf0\x9f\x98 cut emoji \xf0\x9f\x98\x80",
           b"\xfe\xff bom-ish", b"latin1 caf\xe9"]


def ids_of(out):
    return [list(map(int, l.split())) if l.strip() else [] for l in out.decode().split("\n")[:-1]]


def compare_file(name, model, sp, data, what):
    """Whole-file encoding: ids, then pieces, then decode, against SentencePiece."""
    path = os.path.join(tmp, "input.txt")
    open(path, "wb").write(data)
    want = sp.EncodeAsIds(data)
    r = run("--tokenizer", model, "--file", path, "--json")
    got = json.loads(r.stdout) if r.returncode == 0 else None
    if not check(got == want, f"{name}: ids of {what}: {got} != {want}"):
        return
    r = run("--tokenizer", model, "--file", path, "--json", "--pieces")
    # the stored piece of each id (EncodeAsPieces shows an unknown piece's text instead)
    want_pieces = [sp.IdToPiece(i) for i in want]
    check(r.returncode == 0 and json.loads(r.stdout) == want_pieces,
          f"{name}: pieces of {what}")
    text = sp.DecodeIds(want)
    roundtrip = b"round trip ok" in r.stderr
    check(roundtrip == (text.encode("utf-8", "surrogatepass") == data), f"{name}: round-trip report for {what}")


def decode_lines(name, model, sp, seqs, what):
    path = os.path.join(tmp, "ids.txt")
    open(path, "w").write("".join(" ".join(map(str, s)) + "\n" for s in seqs))
    r = run("--tokenizer", model, "--file", path, "--lines", "--decode", "--json")
    if not check(r.returncode == 0, f"{name}: decode {what}: {r.stderr.decode().strip()}"):
        return
    got = [json.loads(l) for l in r.stdout.decode().split("\n")[:-1]]
    want = [sp.DecodeIds(s) for s in seqs]
    bad = [i for i in range(len(seqs)) if i >= len(got) or got[i] != want[i]]
    check(len(got) == len(want) and not bad,
          f"{name}: decode {what}: {len(bad)} of {len(seqs)} differ, first {bad[:1]}: "
          f"{got[bad[0]] if bad and bad[0] < len(got) else None!r} != {want[bad[0]] if bad else None!r}")


def real_lines(limit):
    out = []
    for p in sorted(glob.glob("/usr/lib/python3.11/*.py"))[:40] + sorted(glob.glob("/usr/share/common-licenses/*")):
        if os.path.isfile(p):
            out += open(p, "rb").read().split(b"\n")
    out = [l for l in out if b"\r" not in l]
    return out[:limit]


def test_model(name, model, rng):
    sp = spm.SentencePieceProcessor(model_file=model)
    n = sp.GetPieceSize()
    for t in TEXTS:
        compare_file(name, model, sp, t.encode(), repr(t[:30]))
    for b in INVALID:
        compare_file(name, model, sp, b, repr(b[:30]))
    # thousands of lines of real files, one JSON array per line
    lines = real_lines(4000)
    path = os.path.join(tmp, "lines.txt")
    open(path, "wb").write(b"\n".join(lines) + b"\n")
    r = run("--tokenizer", model, "--file", path, "--lines", "--json")
    got = [json.loads(l) for l in r.stdout.decode().split("\n")[:-1]] if r.returncode == 0 else []
    want = [sp.EncodeAsIds(l) for l in lines]
    bad = [i for i in range(len(want)) if i >= len(got) or got[i] != want[i]]
    check(len(got) == len(want) and not bad,
          f"{name}: {len(bad)} of {len(lines)} real lines differ, first: {lines[bad[0]][:60] if bad else ''!r}")
    decode_lines(name, model, sp, want, "the real lines' ids")
    # random ids: control, unknown and byte pieces anywhere, bytes that split characters
    seqs = [[rng.randrange(n) for _ in range(rng.randrange(0, 12))] for _ in range(1500)]
    special = [i for i in range(n) if sp.IsControl(i) or sp.IsUnknown(i) or sp.IsByte(i)]
    seqs += [[rng.choice(special + [rng.randrange(n)]) for _ in range(rng.randrange(1, 8))] for _ in range(1500)]
    decode_lines(name, model, sp, seqs, "random ids")


def test_corrupt(model):
    raw = open(model, "rb").read()
    path = os.path.join(tmp, "bad.model")
    rng = random.Random(7)

    def refused(data, what, must_refuse=True):
        open(path, "wb").write(data)
        r = run("--tokenizer", path, "--text", "hello world")
        err = r.stderr.decode()
        crashed = r.returncode not in (0, 1)
        named = r.returncode == 0 or (path in err and err.count("\n") == 1)
        ok = not crashed and named and (r.returncode == 1 or not must_refuse)
        return tally.count(ok) or print("FAIL corrupt model:", what, r.returncode, err.strip()[:200])

    cuts = sorted(set([1, 2, 3, 5, 10, 50, 100] + [rng.randrange(1, len(raw)) for _ in range(60)]))
    for c in cuts:
        # a cut inside the pieces loses the unknown or byte pieces, or leaves a field truncated;
        # a cut exactly between fields may leave a loadable model, which is fine
        refused(raw[:c], f"truncated at {c}", must_refuse=False)
    for _ in range(80):
        b = bytearray(raw)
        for _ in range(rng.randrange(1, 4)):
            b[rng.randrange(len(b))] ^= 1 << rng.randrange(8)
        refused(bytes(b), "flipped bits", must_refuse=False)
    refused(b"", "empty file")
    refused(b"\x0a\xff\xff\xff\xff\xff\xff\xff\xff\x7f" + raw, "a huge length")
    refused(b"\x0a\x80\x80\x80\x80\x80\x80\x80\x80\x80\x80\x01", "an overlong varint")
    refused(b"\x0a\x05\x0a\x03abc", "a model without unknown piece")
    refused(b"\x0d\x00\x00\x00\x00", "pieces with the wrong wire type")
    refused(b"\x0b\x0c", "a group")
    refused(raw[:2] + b"\x0a\x03<s>" + raw[2:], "a duplicate piece", must_refuse=False)
    refused(b"not a model at all\n", "text")
    dup = b"\x0a\x09\x0a\x05<unk>\x18\x02" + b"\x0a\x07\x0a\x03abc\x18\x01" * 2
    refused(dup, "a duplicate piece")
    refused(b"\x0a\x09\x0a\x05<unk>\x18\x02\x12\x03\xc8\x02\x05", "bos_id out of range")
    refused(b"\x0a\x09\x0a\x05<unk>\x18\x02\x0a\x0a\x0a\x06<0x41>\x18\x06", "a byte piece without byte_fallback")
    refused(b"\x0a\x09\x0a\x05<unk>\x18\x02\x1a\x06\x12\x04\xff\xff\xff\x7f", "a charsmap past its end")
    refused(b"\x0a\x09\x0a\x05<unk>\x18\x02\x12\x02\x18\x03", "a WORD model")
    # the charsmap's trie pointing anywhere: encoding must fail or succeed, never crash
    sp = spm.SentencePieceProcessor(model_file=model)
    del sp
    check(os.path.exists(model), "corrupt models: the original is intact")


def test_usage(model):
    for args in (["--text", "x"], ["--tokenizer", model], ["--tokenizer", model, "--text", "x", "--bogus"],
                 ["--tokenizer", model, "--text", "x", "--lines"], ["--tokenizer", model, "--model", "m", "--text", "x"],
                 ["--tokenizer", model, "--text"]):
        r = run(*args)
        check(r.returncode == 2 and r.stderr.decode().count("\n") == 1, f"usage error for {args}: {r.returncode}")
    r = run("--model", "missing.safetensors", "--text", "x")
    check(r.returncode == 1 and r.stderr.decode().count("\n") == 1 and b"missing.safetensors" in r.stderr,
          "--model of a missing file: exit 1 naming it (tests/test_text.py reads a carried tokenizer)")
    r = run("--tokenizer", os.path.join(tmp, "missing.model"), "--text", "x")
    check(r.returncode == 1 and b"missing.model" in r.stderr, "a missing tokenizer file: exit 1, named")
    r = run("--tokenizer", model, "--file", os.path.join(tmp, "missing.txt"))
    check(r.returncode == 1 and b"missing.txt" in r.stderr, "a missing text file: exit 1, named")
    path = os.path.join(tmp, "ids_bad.txt")
    open(path, "w").write(f"1 2 {10**6}\n")
    r = run("--tokenizer", model, "--file", path, "--decode")
    check(r.returncode == 1 and b"out of range" in r.stderr, "decoding an id out of range: exit 1")


def main():
    text = corpus()
    rng = random.Random(1)
    models = {name: train(name, opts, text) for name, opts in MODELS.items()}
    for name, model in models.items():
        test_model(name, model, rng)
    test_corrupt(models["llama"])
    test_corrupt(models["bpe_default"])
    test_usage(models["llama"])
    tally.finish()


main()
