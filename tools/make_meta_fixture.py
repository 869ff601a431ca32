#!/usr/bin/python3
"""make_meta_fixture.py: a small checkpoint folder in the exact layout of Meta's
multi-token-prediction release (facebook/multi-token-prediction on Hugging Face), for
testing `mtp convert` / `mtp generate` without the 27 GB originals.

    /usr/bin/python3 tools/make_meta_fixture.py --out DIR [--dtype fp32|bf16] [--steps N]

writes

    DIR/tokenizer.model          SentencePiece BPE, Llama 2's settings (below), small vocab
    DIR/tiny_4/params.json       the release's keys and formatting, n_future_tokens 4
    DIR/tiny_4/consolidated.pth  torch.save of the state dict (a plain dict, Meta's keys)
    DIR/tiny_llama/params.json   an ordinary Llama 2 checkpoint: no n_future_tokens,
    DIR/tiny_llama/consolidated.pth  no n_kv_heads, "vocab_size": -1, and `rope.freqs`
                                 in the state dict, as Llama 2's consolidated.00.pth has

The release folders (7B_200B_1, 7B_200B_4, 7B_1T_1, 7B_1T_4) each hold consolidated.pth
and params.json, and tokenizer.model (Llama 2's) sits at the repository root, one level up:
that is the layout written here. 7B_1T_4's params.json is
{"dim": 4096, "ffn_dim_multiplier": 1.0, "multiple_of": 256, "n_future_tokens": 4,
 "n_heads": 32, "n_kv_heads": 32, "n_layers": 32, "norm_eps": 1e-05, "rope_theta": 10000.0,
 "vocab_size": 32000} -- keys sorted, json.dumps's separators, one line; tiny_4's has the
same keys with dim 64, n_layers 6 (layers.0..2 = trunk + head 1, extra_heads.0..2),
n_heads 4, n_kv_heads 2 (grouped-query attention, so the fixture also tests GQA; the
release has n_kv_heads = n_heads), multiple_of 32 (FFN width 192), vocab_size = the
tokenizer's size.

The tokenizer is trained with spm_train (Debian's sentencepiece) on text that the
machine's packages install (the Python standard library's *.py files, then
/usr/share/common-licenses), with Llama 2's normalizer and trainer settings:
model_type=bpe, byte_fallback, split_digits, add_dummy_prefix, identity normalization,
remove_extra_whitespaces=false, allow_whitespace_only_pieces, unk 0 / bos 1 / eos 2 / no pad,
character_coverage 0.99995, one thread (deterministic).

The weights are not left random: random Llama weights decode to one repeated token, which
tests nothing about speculation. Both models are trained for a few seconds (AdamW, the
multi-token loss sum_i CE(head_i(t), x[t+i]); Meta's init: N(0, 0.02) matrices, unit norms)
on the same text: the first 3000 tokens of the corpus (BOS before each file), which a
model this small half memorizes in that time, so greedy decoding continues a prompt with
varied code-like text (not one repeated token) and the future heads' drafts get accepted
(each head's top-1 accuracy on that text: roughly 0.2 to 0.3). Training runs in fp32 on one thread
with a fixed seed: the same machine gives the same files. --dtype bf16 saves every tensor
rounded to bf16 (Meta's checkpoints are bf16); fp32 saves them as trained.

Importable: write_release(folder, state, params, dtype) writes one model folder (the test
uses it for broken variants); corpus_files(), train_tokenizer(), train_model().
"""

import argparse
import glob
import json
import math
import os
import subprocess
import sys
import tempfile
import time
from typing import Dict, List

import torch
import torch.nn.functional as F

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import meta_model  # noqa: E402

MTP_PARAMS = {"dim": 64, "ffn_dim_multiplier": 1.0, "multiple_of": 32, "n_future_tokens": 4, "n_heads": 4,
              "n_kv_heads": 2, "n_layers": 6, "norm_eps": 1e-05, "rope_theta": 10000.0}
LLAMA_PARAMS = {"dim": 64, "multiple_of": 32, "n_heads": 4, "n_layers": 4, "norm_eps": 1e-05, "vocab_size": -1}


def corpus_files(max_bytes: int = 600_000) -> List[str]:
    """Text files the system's packages install, in a fixed order, up to max_bytes."""
    pys = sorted(glob.glob("/usr/lib/python3.*/*.py"))
    lic = sorted(p for p in glob.glob("/usr/share/common-licenses/*") if os.path.isfile(p) and not os.path.islink(p))
    out, total = [], 0
    for group in (pys, lic):  # code first, then prose, each capped at half the budget
        used = 0
        for p in group:
            n = os.path.getsize(p)
            if n == 0 or used + n > max_bytes // 2:
                continue
            out.append(p)
            used += n
        total += used
    if total < 50_000:
        raise SystemExit("make_meta_fixture: found too little text in /usr/lib/python3.* and /usr/share/common-licenses")
    return out


def read_texts(files: List[str]) -> List[str]:
    return [open(p, encoding="utf-8", errors="replace").read() for p in files]


def train_tokenizer(texts: List[str], out_model: str, vocab: int) -> None:
    """spm_train with Llama 2's settings; writes out_model (a tokenizer.model protobuf)."""
    with tempfile.TemporaryDirectory() as tmp:
        corpus = os.path.join(tmp, "corpus.txt")
        with open(corpus, "w", encoding="utf-8") as f:
            for t in texts:
                f.write(t if t.endswith("\n") else t + "\n")
        prefix = os.path.join(tmp, "tok")
        args = ["--input=" + corpus, "--model_prefix=" + prefix, f"--vocab_size={vocab}", "--model_type=bpe",
                "--byte_fallback=true", "--split_digits=true", "--add_dummy_prefix=true",
                "--normalization_rule_name=identity", "--remove_extra_whitespaces=false",
                "--allow_whitespace_only_pieces=true", "--unk_id=0", "--bos_id=1", "--eos_id=2", "--pad_id=-1",
                "--character_coverage=0.99995", "--num_threads=1", "--max_sentence_length=16384",
                "--minloglevel=2"]
        r = subprocess.run(["spm_train", *args], capture_output=True, text=True)
        if r.returncode != 0:
            raise SystemExit("make_meta_fixture: spm_train failed: " + r.stderr.strip()[-2000:])
        os.replace(prefix + ".model", out_model)


def tokenize_corpus(texts: List[str], sp) -> torch.Tensor:
    """One id stream: BOS, then each file's ids (Llama's documents start with BOS)."""
    ids: List[int] = []
    for t in texts:
        ids.append(sp.bos_id())
        ids.extend(sp.encode(t))
    return torch.tensor(ids, dtype=torch.long)


def meta_init(model: torch.nn.Module, seed: int) -> None:
    """Matrices (and embeddings) N(0, 0.02^2), norm weights 1, in named_parameters() order."""
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for _, p in model.named_parameters():
            if p.dim() >= 2:
                p.copy_(0.02 * torch.randn(p.shape, generator=g))
            else:
                p.fill_(1.0)


def _forward_train(model: meta_model.Transformer, x: torch.Tensor) -> torch.Tensor:
    """The same computation as meta_model.Transformer.forward, with autograd on."""
    args = model.args
    B, T = x.shape
    h = model.tok_embeddings(x)
    table = meta_model.rotary_table(args.head_dim, T, args.rope_theta)
    mask = torch.triu(torch.full((T, T), float("-inf")), diagonal=1)
    for layer in model.layers[:-1]:
        h = layer(h, table, mask)
    latents = torch.stack([head(h, table, mask) for head in model.prediction_heads()], dim=-2)
    return model.output(model.norm(latents))


def train_model(args: meta_model.ModelArgs, stream: torch.Tensor, steps: int, seed: int,
                batch: int = 8, seq: int = 32, lr: float = 3e-3) -> Dict[str, torch.Tensor]:
    """A short AdamW run on random windows of the stream; returns the fp32 state dict."""
    torch.manual_seed(seed)
    model = meta_model.Transformer(args)
    meta_init(model, seed)
    opt = torch.optim.AdamW(model.parameters(), lr=lr, betas=(0.9, 0.95), weight_decay=0.1)
    n = args.n_future_tokens
    g = torch.Generator().manual_seed(seed + 1)
    for step in range(steps):
        warm = max(1, steps // 10)  # linear warmup over 10% of the steps, then cosine to lr / 10
        frac = max(0.0, (step - warm) / max(1, steps - warm))
        rate = lr * (step + 1) / warm if step < warm else lr * (0.1 + 0.45 * (1 + math.cos(math.pi * frac)))
        for group in opt.param_groups:
            group["lr"] = rate
        starts = torch.randint(0, len(stream) - seq - n, (batch,), generator=g)
        win = torch.stack([stream[s:s + seq + n] for s in starts.tolist()])
        logits = _forward_train(model, win[:, :seq])  # (B, T, n, V)
        loss = sum(F.cross_entropy(logits[:, :, i].reshape(-1, args.vocab_size), win[:, 1 + i:1 + i + seq].reshape(-1))
                   for i in range(n))
        opt.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        opt.step()
    return {k: v.detach().clone().contiguous() for k, v in model.state_dict().items()}


def params_text(params: dict) -> str:
    """params.json as the release writes it: sorted keys, json.dumps separators, one line."""
    return json.dumps(params, sort_keys=True)


def write_release(folder: str, state: Dict[str, torch.Tensor], params: dict, dtype: str = "fp32") -> None:
    """folder/consolidated.pth (torch.save of a plain dict; every tensor in `dtype`) and
    folder/params.json."""
    if dtype not in ("fp32", "bf16"):
        raise ValueError("dtype must be fp32 or bf16")
    t = torch.float32 if dtype == "fp32" else torch.bfloat16
    os.makedirs(folder, exist_ok=True)
    torch.save({k: v.to(t).clone().contiguous() for k, v in state.items()}, os.path.join(folder, "consolidated.pth"))
    with open(os.path.join(folder, "params.json"), "w") as f:
        f.write(params_text(params))


def make(out: str, dtype: str = "fp32", vocab: int = 512, steps: int = 240, llama_steps: int = 30, train_tokens: int = 3000,
         seed: int = 1234, quiet: bool = False) -> dict:
    """Writes the whole fixture under out; returns {"tiny_4": params, "tiny_llama": params}."""
    import sentencepiece as spm

    t0 = time.time()
    torch.set_num_threads(1)
    os.makedirs(out, exist_ok=True)
    texts = read_texts(corpus_files())
    tok_path = os.path.join(out, "tokenizer.model")
    train_tokenizer(texts, tok_path, vocab)
    sp = spm.SentencePieceProcessor(model_file=tok_path)
    stream = tokenize_corpus(texts, sp)[:train_tokens]
    V = sp.get_piece_size()
    t1 = time.time()

    p4 = dict(MTP_PARAMS, vocab_size=V)
    state4 = train_model(meta_model.ModelArgs.from_params(p4), stream, steps, seed)
    write_release(os.path.join(out, "tiny_4"), state4, p4, dtype)

    pl = dict(LLAMA_PARAMS)
    al = meta_model.ModelArgs.from_params(dict(pl, vocab_size=V))
    statel = train_model(al, stream, llama_steps, seed + 7)
    statel["rope.freqs"] = meta_model.rotary_frequencies(al.head_dim, al.rope_theta)
    write_release(os.path.join(out, "tiny_llama"), statel, pl, dtype)
    if not quiet:
        print(f"make_meta_fixture: {out}: vocab {V}, {len(stream)} training tokens; tokenizer {t1 - t0:.1f}s, "
              f"training {time.time() - t1:.1f}s ({steps} + {llama_steps} steps), {dtype}")
    return {"tiny_4": p4, "tiny_llama": pl}


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--out", required=True, help="folder to write (created)")
    ap.add_argument("--dtype", choices=("fp32", "bf16"), default="fp32", help="tensor type in consolidated.pth")
    ap.add_argument("--vocab", type=int, default=512, help="tokenizer vocabulary size")
    ap.add_argument("--steps", type=int, default=240, help="training steps of tiny_4")
    ap.add_argument("--llama-steps", type=int, default=30, help="training steps of tiny_llama")
    ap.add_argument("--train-tokens", type=int, default=3000, help="the training text: this many first tokens")
    ap.add_argument("--seed", type=int, default=1234)
    a = ap.parse_args(argv)
    make(a.out, a.dtype, a.vocab, a.steps, a.llama_steps, a.train_tokens, a.seed)
    return 0


if __name__ == "__main__":
    sys.exit(main())
