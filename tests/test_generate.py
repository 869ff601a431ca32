#!/usr/bin/env python3
"""`mtp generate` end to end: on a small byte-level model trained here, --spec none, block
and tree print the same greedy tokens; a batch (--prompt-file --lines) equals each prompt
alone; streamed text equals the JSON text; --stop ends the text before the stop string in
every mode; bad prompts and flags exit 1 or 2 with one
line naming the problem."""
import json
import os
import subprocess
import tempfile

from tally import Tally, mtp_binary

MTP = mtp_binary()
tally = Tally()
check = tally.check


def run(*args):
    return subprocess.run([MTP, *args], capture_output=True, text=True)


def gen_json(model, *args):
    r = run("generate", "--model", model, "--json", "--threads", "2", *args)
    assert r.returncode == 0, r.stderr
    return [json.loads(line) for line in r.stdout.splitlines()]


with tempfile.TemporaryDirectory() as tmp:
    cfg = os.path.join(tmp, "cfg.json")
    with open(cfg, "w") as f:
        json.dump({"dim": 64, "n_layers": 5, "n_heads": 4, "n_kv_heads": 2, "vocab_size": 256,
                   "multiple_of": 32, "n_future_tokens": 4, "max_seq_len": 128}, f)
    subprocess.run([MTP, "prepare", "--out", os.path.join(tmp, "data"), "src"], check=True, capture_output=True)
    run_dir = os.path.join(tmp, "run")
    subprocess.run([MTP, "train", "--config", cfg, "--data", os.path.join(tmp, "data", "train.bin"),
                    "--batch", "8", "--seq", "64", "--steps", "60", "--warmup", "5", "--lr", "1e-2",
                    "--quiet", "--out", run_dir], check=True, capture_output=True)
    model = os.path.join(run_dir, "model.safetensors")
    prompts = ["int main(void) {\n    ", "static void ", "#include <", "/* the "]

    plain = [gen_json(model, "--prompt", p, "-n", "80", "--spec", "none")[0] for p in prompts]
    for spec, extra in (("block", []), ("block", ["--draft", "2"]), ("tree", []), ("tree", ["--tree", "3,2"]),
                        ("auto", []), ("auto", ["--draft", "2"])):
        outs = [gen_json(model, "--prompt", p, "-n", "80", "--spec", spec, *extra)[0] for p in prompts]
        check(all(o["tokens"] == q["tokens"] for o, q in zip(outs, plain)),
              f"--spec {spec} {' '.join(extra)}: tokens differ from --spec none")
        check(all(o["tokens_per_forward"] >= 1 for o in outs) and len(outs[0]["accept"]) >= 1,
              f"--spec {spec}: statistics missing")
    check(all(q["tokens_per_forward"] == 1 and q["accept"] == [] for q in plain), "plain statistics")

    r = run("bench", "decode", "--help")
    check(r.returncode == 0 and "--draft K" in r.stdout, "mtp bench decode --help prints the options")
    # mtp bench decode fails if block, tree or auto output differs from plain; --draft K drafts K-1 deep
    for draft, dtype in (("2", "f32"), ("4", "bf16"), ("3", "q8")):
        r = run("bench", "decode", "--model", model, "--data", os.path.join(tmp, "data", "train.bin"), "--prompts", "2",
                "--prompt-len", "16", "-n", "24", "--repeat", "1", "--threads", "2", "--draft", draft, "--dtype", dtype)
        rows = [line.split() for line in r.stdout.splitlines()
                if line.split()[:2] in (["1", "block"], ["2", "tree"], ["1", "auto"])]
        check(r.returncode == 0 and len(rows) == 3 and all(len(row) == 6 + int(draft) - 1 for row in rows),
              f"bench decode --draft {draft} --dtype {dtype}: exit {r.returncode}, {r.stdout[-300:]!r} {r.stderr[-300:]!r}")

    pf = os.path.join(tmp, "prompts.txt")
    with open(pf, "w") as f:
        f.write("\n".join(p.replace("\n", " ") for p in prompts) + "\n")
    batch = gen_json(model, "--prompt-file", pf, "--lines", "-n", "50", "--spec", "block")
    alone = [gen_json(model, "--prompt", p.replace("\n", " "), "-n", "50", "--spec", "block")[0] for p in prompts]
    check(len(batch) == len(prompts) and all(b["tokens"] == a["tokens"] for b, a in zip(batch, alone)),
          "batched prompts differ from the same prompts alone")

    # long prompts in one batch: the caches fill in chunks that cut across sequences
    longs = [("static int f%d(void) { return %d; }\n" % (i, i)) * 3 for i in range(5)]
    args = [a for p in longs for a in ("--prompt", p)]
    batch = gen_json(model, *args, "-n", "20", "--spec", "tree")
    alone = [gen_json(model, "--prompt", p, "-n", "20", "--spec", "none")[0] for p in longs]
    check(all(b["tokens"] == a["tokens"] for b, a in zip(batch, alone)),
          "long prompts batched (chunked prompt passes) differ from plain decoding alone")

    r = subprocess.run([MTP, "generate", "--model", model, "--prompt", prompts[0], "-n", "60", "--quiet"],
                       capture_output=True)
    j = gen_json(model, "--prompt", prompts[0], "-n", "60")[0]
    check(r.returncode == 0 and r.stdout == bytes(j["tokens"]), "streamed bytes differ from the JSON tokens")

    s1 = gen_json(model, "--prompt", prompts[1], "-n", "40", "--temp", "0.8", "--top-k", "20", "--seed", "3")
    s2 = gen_json(model, "--prompt", prompts[1], "-n", "40", "--temp", "0.8", "--top-k", "20", "--seed", "3")
    check(s1[0]["tokens"] == s2[0]["tokens"], "sampling with the same seed is not reproducible")

    # --stop: the text ends just before the first stop string, even where it falls inside an
    # accepted speculative path; the tokens end with the one that completed it
    for p, q in zip(prompts, plain):
        text = bytes(q["tokens"]).decode("latin-1")
        if len(text) < 30:
            continue
        stop = text[20:23]  # three characters the plain output does produce
        cut = text.index(stop)
        for spec in ("none", "block", "tree"):
            j = gen_json(model, "--prompt", p, "-n", "80", "--spec", spec, "--stop", stop, "--stop", "\x01never")[0]
            end = len(j["tokens"])
            check(j["finish"] == "stop" and bytes(j["tokens"]).decode("latin-1") == text[:end] and
                  text[:end - 1].find(stop) < 0 and text[:end].find(stop) >= 0 and
                  j["text"] == bytes(j["tokens"][:cut]).decode("utf-8", "replace"),
                  f"--stop {stop!r} --spec {spec}: {len(j['tokens'])} tokens, finish {j['finish']}, text {j['text']!r}")
        early = text[8:10]  # listed second, found first: the earliest match cuts
        j = gen_json(model, "--prompt", p, "-n", "80", "--spec", "block", "--stop", stop, "--stop", early)[0]
        first = min(text.index(stop), text.index(early))
        check(j["finish"] == "stop" and j["text"] == bytes(j["tokens"][:first]).decode("utf-8", "replace"),
              f"--stop {stop!r} --stop {early!r}: cut at the earliest match ({first}), text {j['text']!r}")
        r = subprocess.run([MTP, "generate", "--model", model, "--prompt", p, "-n", "80", "--quiet", "--stop", stop],
                           capture_output=True)
        check(r.returncode == 0 and r.stdout == text[:cut].encode("latin-1"),
              f"--stop {stop!r}: streamed text {r.stdout!r} is not the text before the stop string")
    check(plain[0]["finish"] == "length", f"finish without a stop: {plain[0]['finish']}")

    with open(os.path.join(tmp, "blank.txt"), "w") as f:
        f.write("\n\n")
    long_prompt = os.path.join(tmp, "long.txt")
    with open(long_prompt, "w") as f:
        f.write("x" * 200)
    bad = [
        (["--prompt", ""], 1, "empty"),
        (["--prompt-file", long_prompt], 1, "max_seq_len"),
        (["--prompt-tokens", "1,2,300"], 1, "out of range"),
        (["--prompt-tokens", "1,x"], 2, "--prompt-tokens"),
        (["--prompt-file", os.path.join(tmp, "missing.txt")], 1, "missing.txt"),
        (["--prompt", "a", "--spec", "fast"], 2, "--spec"),
        (["--prompt", "a", "--draft", "9"], 2, "--draft"),
        (["--prompt", "a", "--tree", "0"], 2, "--tree"),
        (["--prompt", "a", "--spec", "auto", "--tree", "2,1"], 2, "--tree"),
        (["--prompt", "a", "--spec", "block", "--tree", "2,1"], 2, "--tree"),
        (["--prompt", "a", "--temp", "-1"], 2, "--temp"),
        (["--prompt", "a", "--frobnicate"], 2, "--frobnicate"),
        ([], 2, "prompt"),
        (["--prompt-file", os.path.join(tmp, "blank.txt"), "--lines"], 1, "no prompts"),
        (["--prompt", "a", "--tree", ""], 2, "--tree"),
        (["--prompt", "a", "--tree", "8,8,8"], 2, "--tree"),
        (["--prompt", "a", "--stop", ""], 2, "--stop"),
    ]
    for args, code, needle in bad:
        r = run("generate", "--model", model, *args)
        lines = r.stderr.strip().splitlines()
        check(r.returncode == code and len(lines) == 1 and needle in lines[0] and
              "Sanitizer" not in r.stderr, f"generate {args}: exit {r.returncode}, stderr {r.stderr!r}")

tally.finish()
