#!/usr/bin/env python3
"""PyTorch eager greedy decoding of an mtp model with a KV cache: the outside baseline for
`mtp bench decode` (same model file, same prompts: evenly spaced windows of the shard).

    /usr/bin/python3 bench/decode.py --model M --data SHARD [--prompts 8 --prompt-len 64 -n 128]

Prints tokens/s at batch 1 (one prompt at a time) and at batch = --prompts, and checks
that its greedy tokens equal `mtp generate`'s when --mtp is given."""
import argparse
import json
import math
import os
import subprocess
import sys
import time

import numpy as np
import torch
import torch.nn.functional as F

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "tools"))
import mtp_twin as tw  # noqa: E402


def block_step(blk, x, pos, cache, cos, sin):
    """One Llama block on new positions pos.. of x (B, t, dim), appending to cache."""
    att = blk.attention
    B, t, _ = x.shape
    H, KV, hd = att.n_heads, att.n_kv_heads, att.head_dim
    h = blk.attention_norm(x)
    q = att.wq(h).view(B, t, H, hd)
    k = att.wk(h).view(B, t, KV, hd)
    v = att.wv(h).view(B, t, KV, hd)
    q = tw.apply_rope(q, cos[pos:pos + t], sin[pos:pos + t])
    k = tw.apply_rope(k, cos[pos:pos + t], sin[pos:pos + t])
    cache[0] = k if cache[0] is None else torch.cat([cache[0], k], 1)
    cache[1] = v if cache[1] is None else torch.cat([cache[1], v], 1)
    K = cache[0].repeat_interleave(H // KV, 2).transpose(1, 2)
    V = cache[1].repeat_interleave(H // KV, 2).transpose(1, 2)
    s = q.transpose(1, 2) @ K.transpose(-2, -1) / math.sqrt(hd)
    T = K.shape[2]
    mask = torch.ones(t, T, dtype=torch.bool).triu(T - t + 1)
    s = s.masked_fill(mask, float("-inf"))
    o = (F.softmax(s, -1) @ V).transpose(1, 2).reshape(B, t, H * hd)
    x = x + att.wo(o)
    return x + blk.feed_forward(blk.ffn_norm(x))


@torch.no_grad()
def greedy(model, prompt, n):
    """prompt (B, P) -> (B, n) greedy tokens of head 1."""
    cfg = model.cfg
    blocks = list(model.layers)  # trunk + head 1; the extra heads are not needed
    cos, sin = tw.rope_cos_sin(cfg.head_dim, cfg.max_seq_len, cfg.rope_theta)
    caches = [[None, None] for _ in blocks]
    x, pos, out = prompt, 0, []
    for _ in range(n):
        h = model.tok_embeddings(x)
        for blk, c in zip(blocks, caches):
            h = block_step(blk, h, pos, c, cos, sin)
        pos += x.shape[1]
        nxt = model.output(model.norm(h[:, -1])).argmax(-1)
        out.append(nxt)
        x = nxt[:, None]
    return torch.stack(out, 1)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--model", required=True)
    ap.add_argument("--data", required=True)
    ap.add_argument("--prompts", type=int, default=8)
    ap.add_argument("--prompt-len", type=int, default=64)
    ap.add_argument("-n", "--max-tokens", type=int, default=128)
    ap.add_argument("--threads", type=int, default=os.cpu_count())
    ap.add_argument("--mtp", help="mtp binary: check the tokens against mtp generate --spec none")
    a = ap.parse_args()
    torch.set_num_threads(a.threads)
    _, model = tw.load_model(a.model)
    model.eval()
    tok = tw.read_shard(a.data).astype("int64")
    N = len(tok)
    prompts = torch.from_numpy(np.stack([tok[(N - a.prompt_len) // a.prompts * i:][:a.prompt_len] for i in range(a.prompts)]))
    results = {}
    for batch in (1, a.prompts):
        t0 = time.perf_counter()
        outs = [greedy(model, prompts[i:i + batch], a.max_tokens) for i in range(0, a.prompts, batch)]
        el = time.perf_counter() - t0
        results[batch] = torch.cat(outs)
        print(json.dumps({"batch": batch, "tok_per_s": a.prompts * a.max_tokens / el}))
    if a.mtp:
        ids = ",".join(str(int(t)) for t in prompts[0])
        out = subprocess.run([a.mtp, "generate", "--model", a.model, "--prompt-tokens", ids, "-n",
                              str(a.max_tokens), "--spec", "none", "--json"], check=True,
                             capture_output=True, text=True).stdout
        mine = json.loads(out)["tokens"]
        agree = sum(int(x == y) for x, y in zip(mine, results[1][0].tolist()))
        print(json.dumps({"tokens_equal_to_mtp": agree, "of": a.max_tokens}))
    return 0


if __name__ == "__main__":
    sys.exit(main())
