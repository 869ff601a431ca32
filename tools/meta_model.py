#!/usr/bin/python3
"""meta_model.py: a second, independent PyTorch reference for Meta's released multi-token
prediction checkpoints (facebook/multi-token-prediction: 7B_200B_1, 7B_200B_4, 7B_1T_1,
7B_1T_4), written from the structure of Meta's llama/model.py, in fp32.

Why it exists: tools/mtp_twin.py is the oracle the C code was developed against; if the
twin and mtp shared a misreading of Meta's model, the twin would not catch it. This file
does not import the twin. It follows Meta's reference code's structure and conventions
(facts and formulas; the code is written here):

  - ModelArgs with the keys of Meta's params.json (dim, n_layers, n_heads, n_kv_heads,
    vocab_size, multiple_of, ffn_dim_multiplier, norm_eps, rope_theta, max_seq_len) plus
    the release's n_future_tokens (default 1: an ordinary Llama checkpoint). Llama 2's
    params.json writes "vocab_size": -1 (the tokenizer decides); here the embedding
    matrix's row count decides.
  - RMSNorm: x * rsqrt(mean(x^2) + eps), computed on x.float(), times the weight.
  - Rotary embedding as Meta's precompute_freqs_cis + apply_rotary_emb: per-pair
    frequencies 1 / theta^(2j/head_dim) in float, angles outer(t, freqs), complex
    unit numbers torch.polar(1, angle); each head vector is viewed as head_dim/2 complex
    numbers from *interleaved* pairs (2j, 2j+1) (view_as_complex) and multiplied.
  - Grouped-query attention: each of the n_kv_heads K/V heads is repeated
    n_heads / n_kv_heads times next to itself (Meta's repeat_kv: expand + reshape), so
    query head h reads kv head h // n_rep; scores q.k / sqrt(head_dim) plus an additive
    causal mask (-inf above the diagonal, torch.triu(diagonal=1)), softmax in float.
  - FeedForward: w2(silu(w1 x) * w3 x); hidden = int(2 * (4 * dim) / 3), then
    int(ffn_dim_multiplier * hidden) when the multiplier is given, then rounded up to a
    multiple of multiple_of (Llama 2 7B: 11008).
  - TransformerBlock: h = x + attention(attention_norm(x)); out = h + feed_forward(ffn_norm(h)).
  - The release's multi-token Transformer: `layers` holds n_layers - n_future_tokens + 1
    blocks and `extra_heads` n_future_tokens - 1 blocks. layers[:-1] are the shared trunk;
    the prediction heads are [layers[-1]] + extra_heads, each applied to the trunk's output
    (in parallel, not chained); their outputs are stacked on dim -2, go through the shared
    `norm` and `output`, and come back as float logits of shape
    (batch, seq, n_heads_used, vocab) -- all n_future_tokens heads with
    return_all_heads=True, head 1 alone otherwise (the release's README).

State-dict keys are Meta's: tok_embeddings.weight, layers.{i}.attention.{wq,wk,wv,wo}.weight,
layers.{i}.attention_norm.weight, layers.{i}.ffn_norm.weight,
layers.{i}.feed_forward.{w1,w2,w3}.weight, extra_heads.{j}.<same>, norm.weight,
output.weight. Llama 2's consolidated.pth also carries `rope.freqs` (the rotary
frequencies, not a weight); `load` accepts it, checks it against the frequencies computed
here, and drops it, as Meta's loaders do.

What it is not: fast. There is no KV cache: greedy() recomputes the whole sequence for
every token, which is the simplest correct decoder to compare against.

Usage:  from meta_model import load; model = load("DIR/7B_1T_4")
        logits = model(torch.tensor([ids]))           # (1, T, n_future, V), float32
        model.greedy(ids, 40)                         # next 40 ids by head 1
Command line: meta_model.py DIR --ids 1,2,3 [-n 20] prints the greedy continuation.
"""

import argparse
import dataclasses
import json
import math
import os
import sys
from typing import Dict, List, Optional

import torch
import torch.nn as nn
import torch.nn.functional as F


@dataclasses.dataclass
class ModelArgs:
    dim: int = 4096
    n_layers: int = 32
    n_heads: int = 32
    n_kv_heads: Optional[int] = None
    vocab_size: int = -1  # Llama 2 writes -1: the tokenizer (here: the embeddings) decides
    multiple_of: int = 256
    ffn_dim_multiplier: Optional[float] = None
    norm_eps: float = 1e-5
    rope_theta: float = 10000.0
    max_seq_len: int = 2048
    n_future_tokens: int = 1

    @classmethod
    def from_params(cls, params: dict) -> "ModelArgs":
        """From a params.json dict; a key Meta's ModelArgs does not have is an error."""
        known = {f.name for f in dataclasses.fields(cls)}
        unknown = sorted(set(params) - known)
        if unknown:
            raise ValueError(f"params.json: unknown keys {unknown}")
        return cls(**params)

    @property
    def kv_heads(self) -> int:
        return self.n_heads if self.n_kv_heads is None else self.n_kv_heads

    @property
    def head_dim(self) -> int:
        return self.dim // self.n_heads

    def ffn_hidden(self) -> int:
        """Meta's FeedForward width rule, from hidden_dim = 4 * dim."""
        width = int(2 * (4 * self.dim) / 3)
        if self.ffn_dim_multiplier is not None:
            width = int(self.ffn_dim_multiplier * width)
        m = self.multiple_of
        return m * ((width + m - 1) // m)


def widen(x: torch.Tensor) -> torch.Tensor:
    """Meta's `.float()` casts: bf16/fp16 computed in fp32. float64 stays float64, so that
    model.double() is a float64 copy of the reference (for judging fp32 rounding)."""
    return x.to(torch.promote_types(x.dtype, torch.float32))


class RMSNorm(nn.Module):
    def __init__(self, dim: int, eps: float):
        super().__init__()
        self.eps = eps
        self.weight = nn.Parameter(torch.ones(dim))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        xf = widen(x)
        normed = xf * torch.rsqrt(xf.pow(2).mean(dim=-1, keepdim=True) + self.eps)
        return normed.type_as(x) * self.weight


def rotary_frequencies(head_dim: int, theta: float) -> torch.Tensor:
    """The head_dim/2 rotation speeds 1 / theta^(2j/head_dim), in float (Llama 2's rope.freqs)."""
    exponents = torch.arange(0, head_dim, 2)[: head_dim // 2].float() / head_dim
    return 1.0 / (theta ** exponents)


def rotary_table(head_dim: int, length: int, theta: float, dtype: torch.dtype = torch.float32) -> torch.Tensor:
    """(length, head_dim/2) complex: e^(i * t * freq_j) for positions t = 0..length-1, the
    angles computed in float (Meta's precompute_freqs_cis; complex64). dtype float64 gives
    the same angles and their exact cos/sin in complex128."""
    positions = torch.arange(length, dtype=torch.float32)
    angles = torch.outer(positions, rotary_frequencies(head_dim, theta)).float().to(dtype)
    return torch.polar(torch.ones_like(angles), angles)


def rotate(x: torch.Tensor, table: torch.Tensor) -> torch.Tensor:
    """x (B, T, H, hd) rotated pairwise: consecutive entries (2j, 2j+1) are one complex
    number (real, imaginary), multiplied by table[t, j]."""
    B, T, H, hd = x.shape
    as_complex = torch.view_as_complex(widen(x).reshape(B, T, H, hd // 2, 2))
    turned = as_complex * table.view(1, T, 1, hd // 2)
    return torch.view_as_real(turned).flatten(3).type_as(x)


def repeat_kv(x: torch.Tensor, n_rep: int) -> torch.Tensor:
    """(B, T, n_kv, hd) -> (B, T, n_kv * n_rep, hd), each kv head repeated in place."""
    if n_rep == 1:
        return x
    B, T, KV, hd = x.shape
    return x[:, :, :, None, :].expand(B, T, KV, n_rep, hd).reshape(B, T, KV * n_rep, hd)


class Attention(nn.Module):
    def __init__(self, args: ModelArgs):
        super().__init__()
        self.n_heads, self.n_kv, self.hd = args.n_heads, args.kv_heads, args.head_dim
        self.wq = nn.Linear(args.dim, self.n_heads * self.hd, bias=False)
        self.wk = nn.Linear(args.dim, self.n_kv * self.hd, bias=False)
        self.wv = nn.Linear(args.dim, self.n_kv * self.hd, bias=False)
        self.wo = nn.Linear(self.n_heads * self.hd, args.dim, bias=False)

    def forward(self, x: torch.Tensor, table: torch.Tensor, mask: Optional[torch.Tensor]) -> torch.Tensor:
        B, T, _ = x.shape
        q = self.wq(x).view(B, T, self.n_heads, self.hd)
        k = self.wk(x).view(B, T, self.n_kv, self.hd)
        v = self.wv(x).view(B, T, self.n_kv, self.hd)
        q, k = rotate(q, table), rotate(k, table)
        rep = self.n_heads // self.n_kv
        k, v = repeat_kv(k, rep), repeat_kv(v, rep)
        q, k, v = q.transpose(1, 2), k.transpose(1, 2), v.transpose(1, 2)  # (B, H, T, hd)
        scores = torch.matmul(q, k.transpose(2, 3)) / math.sqrt(self.hd)
        if mask is not None:
            scores = scores + mask
        probs = F.softmax(widen(scores), dim=-1).type_as(q)
        out = torch.matmul(probs, v).transpose(1, 2).contiguous().view(B, T, -1)
        return self.wo(out)


class FeedForward(nn.Module):
    def __init__(self, dim: int, hidden: int):
        super().__init__()
        self.w1 = nn.Linear(dim, hidden, bias=False)
        self.w2 = nn.Linear(hidden, dim, bias=False)
        self.w3 = nn.Linear(dim, hidden, bias=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.w2(F.silu(self.w1(x)) * self.w3(x))


class TransformerBlock(nn.Module):
    def __init__(self, args: ModelArgs):
        super().__init__()
        self.attention = Attention(args)
        self.feed_forward = FeedForward(args.dim, args.ffn_hidden())
        self.attention_norm = RMSNorm(args.dim, args.norm_eps)
        self.ffn_norm = RMSNorm(args.dim, args.norm_eps)

    def forward(self, x: torch.Tensor, table: torch.Tensor, mask: Optional[torch.Tensor]) -> torch.Tensor:
        h = x + self.attention(self.attention_norm(x), table, mask)
        return h + self.feed_forward(self.ffn_norm(h))


class Transformer(nn.Module):
    """The release's model: trunk layers[:-1], prediction heads [layers[-1]] + extra_heads."""

    def __init__(self, args: ModelArgs):
        super().__init__()
        if args.vocab_size <= 0:
            raise ValueError("vocab_size must be resolved (> 0) before building the model")
        if not 1 <= args.n_future_tokens <= args.n_layers:
            raise ValueError("need 1 <= n_future_tokens <= n_layers")
        self.args = args
        n = args.n_future_tokens
        self.tok_embeddings = nn.Embedding(args.vocab_size, args.dim)
        self.layers = nn.ModuleList(TransformerBlock(args) for _ in range(args.n_layers - n + 1))
        self.extra_heads = nn.ModuleList(TransformerBlock(args) for _ in range(n - 1))
        self.norm = RMSNorm(args.dim, args.norm_eps)
        self.output = nn.Linear(args.dim, args.vocab_size, bias=False)

    def prediction_heads(self) -> List[TransformerBlock]:
        return [self.layers[-1]] + list(self.extra_heads)

    @torch.no_grad()
    def forward(self, tokens: torch.Tensor, return_all_heads: bool = True) -> torch.Tensor:
        """tokens (B, T) ids -> float logits (B, T, n_future_tokens or 1, V); [..., i, :] is
        head i+1, which at position t predicts token t+1+i."""
        B, T = tokens.shape
        if T > self.args.max_seq_len:
            raise ValueError(f"sequence of {T} tokens is longer than max_seq_len {self.args.max_seq_len}")
        h = self.tok_embeddings(tokens)
        table = rotary_table(self.args.head_dim, T, self.args.rope_theta, widen(h).dtype)
        mask = torch.triu(torch.full((T, T), float("-inf")), diagonal=1).type_as(h) if T > 1 else None
        for layer in self.layers[:-1]:
            h = layer(h, table, mask)
        trunk = h
        heads = self.prediction_heads()[: self.args.n_future_tokens if return_all_heads else 1]
        latents = torch.stack([head(trunk, table, mask) for head in heads], dim=-2)  # (B, T, n, dim)
        return widen(self.output(self.norm(latents)))

    def greedy(self, prompt_ids: List[int], n: int, stop: Optional[int] = None) -> List[int]:
        """The next n ids by head 1's argmax (the lowest id among equal maxima), each by a
        full forward over prompt + ids so far; stops after `stop` (e.g. EOS) if given."""
        seq = list(prompt_ids)
        out: List[int] = []
        for _ in range(n):
            logits = self.forward(torch.tensor([seq]), return_all_heads=False)[0, -1, 0]
            nxt = int(torch.argmax(logits))
            out.append(nxt)
            seq.append(nxt)
            if stop is not None and nxt == stop:
                break
        return out


def expected_keys(args: ModelArgs) -> List[str]:
    """Every state-dict key of a model with these args, in Meta's names."""
    block = ["attention.wq.weight", "attention.wk.weight", "attention.wv.weight", "attention.wo.weight",
             "feed_forward.w1.weight", "feed_forward.w2.weight", "feed_forward.w3.weight",
             "attention_norm.weight", "ffn_norm.weight"]
    n = args.n_future_tokens
    keys = ["tok_embeddings.weight"]
    keys += [f"layers.{i}.{b}" for i in range(args.n_layers - n + 1) for b in block]
    keys += [f"extra_heads.{j}.{b}" for j in range(n - 1) for b in block]
    return keys + ["norm.weight", "output.weight"]


def build(args: ModelArgs, state: Optional[Dict[str, torch.Tensor]] = None) -> Transformer:
    """A model (fp32 parameters); with `state`, loaded strictly (every key, exact shapes),
    its tensors widened to float32. `rope.freqs`, if present, must equal
    rotary_frequencies() (to float32 rounding of the stored dtype) and is dropped."""
    if state is not None:
        state = dict(state)
        if args.vocab_size <= 0:
            args = dataclasses.replace(args, vocab_size=int(state["tok_embeddings.weight"].shape[0]))
        freqs = state.pop("rope.freqs", None)
        if freqs is not None:
            want = rotary_frequencies(args.head_dim, args.rope_theta).to(freqs.dtype)
            if not torch.equal(freqs, want):
                raise ValueError("rope.freqs differs from 1 / rope_theta^(2j/head_dim)")
    model = Transformer(args)
    if state is not None:
        model.load_state_dict({k: v.float() for k, v in state.items()}, strict=True)
    return model.eval()


def load(folder: str, checkpoint: str = "consolidated.pth") -> Transformer:
    """A release folder: params.json + consolidated.pth (torch.save of a state dict)."""
    with open(os.path.join(folder, "params.json")) as f:
        args = ModelArgs.from_params(json.load(f))
    state = torch.load(os.path.join(folder, checkpoint), map_location="cpu")
    return build(args, state)


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description="Greedy continuation of token ids by a Meta release folder.")
    ap.add_argument("folder")
    ap.add_argument("--ids", required=True, help="comma-separated prompt ids (with BOS if wanted)")
    ap.add_argument("-n", type=int, default=20)
    a = ap.parse_args(argv)
    torch.manual_seed(0)
    model = load(a.folder)
    ids = [int(x) for x in a.ids.split(",")]
    print(",".join(str(i) for i in model.greedy(ids, a.n)))
    return 0


if __name__ == "__main__":
    sys.exit(main())
