#!/usr/bin/python3
"""mtp_twin.py: the PyTorch twin of the mtp model, the oracle the C code is tested against.

What it is: an independent, deliberately plain float32 implementation of the model
contract (multi-token prediction, Gloeckle et al. 2024; see docs/ and the project's PAPER.md):
  - Config with the keys of Meta's params.json plus n_future_tokens and hidden_dim;
  - MTPModel (nn.Module): a Llama trunk, n "future heads" (each one transformer block
    applied in parallel to the trunk output z), the shared final `norm` and `output`;
  - safetensors read/write (numpy only) and llm.c token shard read/write;
  - the sequential batch builder, the per-future-head loss, init, and the AdamW training
    loop with mtp's LR schedule (what `mtp train --no-shuffle` must reproduce).

What it is not: fast, memory-efficient (it materialises every future head's logits, the
paper's "naive" ordering), or a trainer for real runs. Nothing here is tuned; if the
C code and this file disagree, read the contract first, then this file.

Invariants:
  - nn.Module parameter names ARE the checkpoint tensor names (tok_embeddings.weight,
    layers.{i}.attention.wq.weight, extra_heads.{j}..., norm.weight, output.weight), so
    state_dict() round-trips through safetensors with no renaming table.
  - All math in the parameters' dtype: float32 (the contract's "in float"). Nothing is
    cast, so model.double() gives a float64 twin for judging fp32 noise. No biases. `output` is not tied to `tok_embeddings`.

Also runnable: `python3 tools/mtp_twin.py {selftest,init,dump,eval,train} ...` (see --help);
dump/eval/train take the same arguments as model_dump / mtp eval / mtp train.
"""

import argparse
import dataclasses
import json
import math
import os
import struct
import sys
from typing import Dict, List, Optional, Tuple

import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F

# ---------------------------------------------------------------------------------------
# Config (Meta's params.json keys + n_future_tokens + optional hidden_dim)
# ---------------------------------------------------------------------------------------


@dataclasses.dataclass
class Config:
    dim: int
    n_layers: int  # trunk layers + future heads (the paper's parameter matching)
    n_heads: int  # attention heads
    vocab_size: int
    n_kv_heads: Optional[int] = None  # None: same as n_heads (plain MHA)
    multiple_of: int = 256
    ffn_dim_multiplier: Optional[float] = None  # None (JSON null or absent): unset
    norm_eps: float = 1e-5
    rope_theta: float = 10000.0
    max_seq_len: int = 2048
    n_future_tokens: int = 1  # n: number of future heads
    hidden_dim: Optional[int] = None  # explicit FFN size, overrides Meta's rule

    def __post_init__(self):
        if self.n_kv_heads is None:
            self.n_kv_heads = self.n_heads
        assert self.dim % self.n_heads == 0, "dim must be a multiple of n_heads"
        assert self.n_heads % self.n_kv_heads == 0, "n_kv_heads must divide n_heads"
        assert (self.dim // self.n_heads) % 2 == 0, "rotary needs an even head_dim"
        assert 1 <= self.n_future_tokens <= self.n_layers, "need n_layers >= n_future_tokens"

    # -- derived sizes --
    @property
    def head_dim(self) -> int:
        return self.dim // self.n_heads

    @property
    def n_future(self) -> int:
        return self.n_future_tokens

    @property
    def n_trunk(self) -> int:
        # L = n_layers - n + 1 layers named layers.*; the last of them is future head 1.
        return self.n_layers - self.n_future_tokens

    @property
    def ffn_hidden(self) -> int:
        """FFN width: explicit hidden_dim, else Meta's rule (llama/model.py FeedForward)."""
        if self.hidden_dim is not None:
            return self.hidden_dim
        hidden = 4 * self.dim
        hidden = int(2 * hidden / 3)
        if self.ffn_dim_multiplier is not None:
            hidden = int(self.ffn_dim_multiplier * hidden)
        return self.multiple_of * ((hidden + self.multiple_of - 1) // self.multiple_of)

    # -- (de)serialisation --
    @classmethod
    def from_dict(cls, d: dict) -> "Config":
        known = {f.name for f in dataclasses.fields(cls)}
        return cls(**{k: v for k, v in d.items() if k in known})

    def to_dict(self) -> dict:
        d = dataclasses.asdict(self)
        if d["hidden_dim"] is None:
            del d["hidden_dim"]  # absent means "use Meta's rule"
        return d

    def to_json(self) -> str:
        return json.dumps(self.to_dict())


# ---------------------------------------------------------------------------------------
# Model
# ---------------------------------------------------------------------------------------


class RMSNorm(nn.Module):
    """RMSNorm(x) = x * rsqrt(mean(x^2) + eps) * weight, in the model's dtype (float32)."""

    def __init__(self, dim: int, eps: float):
        super().__init__()
        self.eps = eps
        self.weight = nn.Parameter(torch.ones(dim))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x * torch.rsqrt(x.pow(2).mean(-1, keepdim=True) + self.eps) * self.weight


def rope_cos_sin(head_dim: int, T: int, theta: float) -> Tuple[torch.Tensor, torch.Tensor]:
    """cos, sin of shape (T, head_dim/2): angle[t, j] = t * theta^(-2j/head_dim) (Meta)."""
    freqs = 1.0 / (theta ** (torch.arange(0, head_dim, 2).float() / head_dim))
    angle = torch.outer(torch.arange(T).float(), freqs)
    return torch.cos(angle), torch.sin(angle)


def apply_rope(x: torch.Tensor, cos: torch.Tensor, sin: torch.Tensor) -> torch.Tensor:
    """Rotate each consecutive pair (2j, 2j+1) of every head vector.
    x (B, T, H, hd); cos, sin (T, hd/2). x' = (x0*cos - x1*sin, x0*sin + x1*cos)."""
    B, T, H, hd = x.shape
    pairs = x.reshape(B, T, H, hd // 2, 2)
    x0, x1 = pairs[..., 0], pairs[..., 1]
    c = cos.view(1, T, 1, hd // 2)
    s = sin.view(1, T, 1, hd // 2)
    out = torch.stack([x0 * c - x1 * s, x0 * s + x1 * c], dim=-1)
    return out.reshape(B, T, H, hd)


class Attention(nn.Module):
    """Causal multi-head attention with grouped-query K/V and rotary q, k. No biases."""

    def __init__(self, cfg: Config):
        super().__init__()
        self.n_heads, self.n_kv_heads, self.head_dim = cfg.n_heads, cfg.n_kv_heads, cfg.head_dim
        self.rope_theta = cfg.rope_theta
        kv_dim = cfg.n_kv_heads * cfg.head_dim
        self.wq = nn.Linear(cfg.dim, cfg.dim, bias=False)  # (dim, dim)
        self.wk = nn.Linear(cfg.dim, kv_dim, bias=False)  # (n_kv_heads*hd, dim)
        self.wv = nn.Linear(cfg.dim, kv_dim, bias=False)  # (n_kv_heads*hd, dim)
        self.wo = nn.Linear(cfg.dim, cfg.dim, bias=False)  # (dim, dim)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        B, T, _ = x.shape
        H, KV, hd = self.n_heads, self.n_kv_heads, self.head_dim
        q = self.wq(x).view(B, T, H, hd)
        k = self.wk(x).view(B, T, KV, hd)
        v = self.wv(x).view(B, T, KV, hd)
        cos, sin = rope_cos_sin(hd, T, self.rope_theta)  # positions 0..T-1 in every row
        q, k = apply_rope(q, cos, sin), apply_rope(k, cos, sin)
        # GQA: query head h reads kv head h // (n_heads / n_kv_heads).
        rep = H // KV
        k = k.repeat_interleave(rep, dim=2)
        v = v.repeat_interleave(rep, dim=2)
        q, k, v = (t.transpose(1, 2) for t in (q, k, v))  # (B, H, T, hd)
        scores = (q @ k.transpose(-2, -1)) / math.sqrt(hd)  # (B, H, T, T)
        causal = torch.ones(T, T, dtype=torch.bool).triu(1)
        scores = scores.masked_fill(causal, float("-inf"))
        att = F.softmax(scores, dim=-1)
        out = (att @ v).transpose(1, 2).reshape(B, T, H * hd)
        return self.wo(out)


class FeedForward(nn.Module):
    """SwiGLU: w2(silu(w1 x) * w3 x). w1, w3 (hidden, dim); w2 (dim, hidden)."""

    def __init__(self, dim: int, hidden: int):
        super().__init__()
        self.w1 = nn.Linear(dim, hidden, bias=False)
        self.w2 = nn.Linear(hidden, dim, bias=False)
        self.w3 = nn.Linear(dim, hidden, bias=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.w2(F.silu(self.w1(x)) * self.w3(x))


class Block(nn.Module):
    """Llama block: h = x + Attention(RMSNorm(x)); out = h + FFN(RMSNorm(h))."""

    def __init__(self, cfg: Config):
        super().__init__()
        self.attention_norm = RMSNorm(cfg.dim, cfg.norm_eps)
        self.attention = Attention(cfg)
        self.ffn_norm = RMSNorm(cfg.dim, cfg.norm_eps)
        self.feed_forward = FeedForward(cfg.dim, cfg.ffn_hidden)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = x + self.attention(self.attention_norm(x))
        return h + self.feed_forward(self.ffn_norm(h))


class MTPModel(nn.Module):
    """Trunk layers.0..L-2, future head 1 = layers.{L-1}, heads 2..n = extra_heads.0..n-2
    (L = n_layers - n + 1). Every future head is applied to the trunk output z (parallel,
    not chained), then the shared norm and output: logits_i = output(norm(head_i(z)))."""

    def __init__(self, cfg: Config):
        super().__init__()
        self.cfg = cfg
        self.tok_embeddings = nn.Embedding(cfg.vocab_size, cfg.dim)
        self.layers = nn.ModuleList(Block(cfg) for _ in range(cfg.n_trunk + 1))
        self.extra_heads = nn.ModuleList(Block(cfg) for _ in range(cfg.n_future - 1))
        self.norm = RMSNorm(cfg.dim, cfg.norm_eps)
        self.output = nn.Linear(cfg.dim, cfg.vocab_size, bias=False)

    def future_heads(self) -> List[Block]:
        """Future heads in order 1..n."""
        return [self.layers[-1]] + list(self.extra_heads)

    def trunk(self, tokens: torch.Tensor) -> torch.Tensor:
        """tokens (B, T) int64 -> z (B, T, dim)."""
        x = self.tok_embeddings(tokens)
        for layer in self.layers[:-1]:
            x = layer(x)
        return x

    def forward(self, tokens: torch.Tensor) -> List[torch.Tensor]:
        """tokens (B, T) -> list of n logits (B, T, V); entry i-1 is future head i."""
        z = self.trunk(tokens)
        return [self.output(self.norm(head(z))) for head in self.future_heads()]


def build_model(cfg: Config, tensors: Optional[Dict[str, np.ndarray]] = None) -> MTPModel:
    """A model, optionally loaded from a name->array dict (every name must match)."""
    model = MTPModel(cfg)
    if tensors is not None:
        state = {k: torch.from_numpy(np.ascontiguousarray(v, dtype=np.float32)) for k, v in tensors.items()}
        model.load_state_dict(state, strict=True)
    return model


# Fine-tuning: the paper fine-tunes n = 4 models with n' = 1 and n' = 4 heads.
PARTS = ("trunk", "heads", "embeddings", "output")


def part_of(cfg: Config, name: str) -> str:
    """Which part (--freeze) a tensor belongs to: tok_embeddings is `embeddings`; norm and
    output (shared by every head) are `output`; layers.{i} for i < n_trunk the `trunk`;
    layers.{n_trunk} (head 1) and extra_heads.* the `heads`."""
    if name.startswith("tok_embeddings."):
        return "embeddings"
    if name.startswith(("norm.", "output.")):
        return "output"
    if name.startswith("extra_heads."):
        return "heads"
    assert name.startswith("layers."), name
    return "trunk" if int(name.split(".")[1]) < cfg.n_trunk else "heads"


def keep_heads(model: MTPModel, k: int) -> MTPModel:
    """The model with future heads 1..k of its n: n_layers drops by n - k, so n_trunk and
    every kept tensor's name stay; heads k+1..n (extra_heads.{k-1}..) are dropped."""
    cfg = model.cfg
    assert 1 <= k <= cfg.n_future, f"cannot keep {k} of {cfg.n_future} future heads"
    kept = dataclasses.replace(cfg, n_layers=cfg.n_layers - (cfg.n_future - k), n_future_tokens=k)
    state = model.state_dict()
    out = MTPModel(kept)
    out.load_state_dict({name: state[name] for name in out.state_dict()}, strict=True)
    return out


def freeze_parts(model: MTPModel, parts) -> None:
    """requires_grad=False on every tensor of the given parts (no gradient, no update)."""
    assert set(parts) <= set(PARTS), f"unknown parts {sorted(set(parts) - set(PARTS))}"
    for name, p in model.named_parameters():
        p.requires_grad_(part_of(model.cfg, name) not in parts)


def init_params(model: MTPModel, seed: int, std: float = 0.02, norm_jitter: float = 0.0) -> None:
    """Deterministic init: matrices ~ N(0, std^2); norm weights 1 + norm_jitter*N(0,1)
    (jitter makes norm-weight gradients matter in tests). Order = named_parameters()."""
    gen = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for _, p in model.named_parameters():
            noise = torch.randn(p.shape, generator=gen)
            if p.dim() >= 2:
                p.copy_(std * noise)
            else:
                p.copy_(1.0 + norm_jitter * noise)


def model_tensors(model: MTPModel) -> Dict[str, np.ndarray]:
    return {k: v.detach().cpu().float().numpy().copy() for k, v in model.state_dict().items()}


# ---------------------------------------------------------------------------------------
# safetensors (numpy only): u64 LE header length N, N bytes JSON (space-padded to a
# multiple of 8), then the data; data_offsets are relative to the data start.
# ---------------------------------------------------------------------------------------

_ST_DTYPES = {"F32": np.float32, "F16": np.float16, "I32": np.int32, "I64": np.int64, "U16": np.uint16}


def save_safetensors(path: str, tensors: Dict[str, np.ndarray], metadata: Optional[Dict[str, str]] = None) -> None:
    """Writes F32 tensors contiguously in the dict's order."""
    header: dict = {}
    if metadata:
        header["__metadata__"] = {str(k): str(v) for k, v in metadata.items()}
    blobs, offset = [], 0
    for name, arr in tensors.items():
        data = np.ascontiguousarray(arr, dtype="<f4").tobytes()
        header[name] = {"dtype": "F32", "shape": list(np.shape(arr)), "data_offsets": [offset, offset + len(data)]}
        blobs.append(data)
        offset += len(data)
    hjson = json.dumps(header, separators=(",", ":")).encode()
    hjson += b" " * (-len(hjson) % 8)
    with open(path, "wb") as f:
        f.write(struct.pack("<Q", len(hjson)))
        f.write(hjson)
        for b in blobs:
            f.write(b)


def load_safetensors(path: str) -> Tuple[Dict[str, np.ndarray], Dict[str, str]]:
    """Returns (name -> float32/int array, metadata). BF16/F16 are widened to float32."""
    with open(path, "rb") as f:
        raw = f.read()
    (n,) = struct.unpack("<Q", raw[:8])
    header = json.loads(raw[8 : 8 + n])
    data = raw[8 + n :]
    meta = header.pop("__metadata__", {}) or {}
    out = {}
    for name, info in header.items():
        b, e = info["data_offsets"]
        dt = info["dtype"]
        if dt == "BF16":
            arr = (np.frombuffer(data[b:e], dtype="<u2").astype(np.uint32) << 16).view(np.float32)
        else:
            arr = np.frombuffer(data[b:e], dtype=np.dtype(_ST_DTYPES[dt]).newbyteorder("<"))
        arr = arr.reshape(info["shape"])
        out[name] = arr.astype(np.float32) if dt in ("F16", "BF16") else arr.copy()
    return out, meta


def load_model(path: str) -> Tuple[Config, MTPModel]:
    """A checkpoint written by mtp (or save_model): config from metadata["config"]."""
    tensors, meta = load_safetensors(path)
    assert meta.get("format") == "mtp", f"{path}: metadata format is not 'mtp'"
    cfg = Config.from_dict(json.loads(meta["config"]))
    return cfg, build_model(cfg, tensors)


def save_model(path: str, model: MTPModel) -> None:
    save_safetensors(path, model_tensors(model), {"format": "mtp", "config": model.cfg.to_json()})


# ---------------------------------------------------------------------------------------
# llm.c token shards: 256 int32 header (magic 20240520, version 1, token count), then u16.
# ---------------------------------------------------------------------------------------

# llm.c's token shards: a 256 x int32 header (magic, version, token count), then the
# tokens: uint16 (magic 20240520, version 1) or uint32 (magic 20240801, version 7, how llm.c
# writes Llama 3 data).
SHARD_MAGIC, SHARD_VERSION = 20240520, 1
SHARD32_MAGIC, SHARD32_VERSION = 20240801, 7
SHARD_FORMATS = {SHARD_MAGIC: (SHARD_VERSION, "<u2"), SHARD32_MAGIC: (SHARD32_VERSION, "<u4")}


def write_shard(path: str, tokens, u32: Optional[bool] = None) -> None:
    """uint16 when every id fits (or u32=False), else uint32 (or u32=True)."""
    tokens = np.asarray(tokens)
    if u32 is None:
        u32 = int(tokens.max()) >= 65536
    magic = SHARD32_MAGIC if u32 else SHARD_MAGIC
    version, dtype = SHARD_FORMATS[magic]
    assert tokens.min() >= 0 and tokens.max() < (2**32 if u32 else 2**16), f"tokens must fit {dtype}"
    header = np.zeros(256, dtype="<i4")
    header[:3] = (magic, version, len(tokens))
    with open(path, "wb") as f:
        f.write(header.tobytes())
        f.write(tokens.astype(dtype).tobytes())


def read_shard(path: str) -> np.ndarray:
    with open(path, "rb") as f:
        header = np.frombuffer(f.read(256 * 4), dtype="<i4")
        fmt = SHARD_FORMATS.get(int(header[0]))
        assert fmt and header[1] == fmt[0], f"{path}: not an llm.c shard"
        tokens = np.frombuffer(f.read(), dtype=fmt[1])
    assert len(tokens) == header[2], f"{path}: header says {header[2]} tokens, file has {len(tokens)}"
    return tokens.astype(np.int64)


# ---------------------------------------------------------------------------------------
# Batches and loss
# ---------------------------------------------------------------------------------------


def get_batch(tokens: np.ndarray, k: int, B: int, T: int, n_future: int) -> Tuple[torch.Tensor, List[torch.Tensor]]:
    """Sequential batch k: row b starts at s = k*B*T + b*T; x[b][t] = tok[(s+t) % N];
    target of future head i: y_i[b][t] = tok[(s+t+i) % N]. Returns x, [y_1..y_n]."""
    N = len(tokens)
    s = k * B * T + np.arange(B)[:, None] * T + np.arange(T)[None, :]  # (B, T)
    x = torch.from_numpy(tokens[s % N])
    ys = [torch.from_numpy(tokens[(s + i) % N]) for i in range(1, n_future + 1)]
    return x, ys


def head_losses(logits: List[torch.Tensor], ys: List[torch.Tensor]) -> torch.Tensor:
    """(n,) mean cross-entropy of each future head over all B*T positions."""
    return torch.stack([F.cross_entropy(lg.reshape(-1, lg.shape[-1]), y.reshape(-1)) for lg, y in zip(logits, ys)])


def total_loss(losses: torch.Tensor, weights: Optional[List[float]] = None) -> torch.Tensor:
    """Loss = sum_i w_i * loss_i (w_i = 1 by default)."""
    if weights is None:
        return losses.sum()
    return (losses * torch.tensor(weights, dtype=losses.dtype)).sum()


def forward_backward(model: MTPModel, x: torch.Tensor, ys: List[torch.Tensor],
                     head_weights: Optional[List[float]] = None):
    """What model_dump does for one batch: returns (logits list, per-head losses, grads dict).
    The gradient is that of sum_i w_i * loss_i (head_weights, default all 1)."""
    model.zero_grad(set_to_none=True)
    logits = model(x)
    losses = head_losses(logits, ys)
    total_loss(losses, head_weights).backward()
    grads = {name: p.grad.detach().numpy().copy() for name, p in model.named_parameters()}
    return [lg.detach().numpy() for lg in logits], losses.detach().numpy(), grads


def dump_tensors(model: MTPModel, tokens: np.ndarray, B: int, T: int) -> Dict[str, np.ndarray]:
    """The contents of model_dump's output for batch 0: logits.{i} (B,T,V) for future head
    i = 1..n, loss (n,), grad.{param name} (param shape)."""
    x, ys = get_batch(tokens, 0, B, T, model.cfg.n_future)
    logits, losses, grads = forward_backward(model, x, ys)
    out = {f"logits.{i}": lg for i, lg in enumerate(logits, start=1)}
    out["loss"] = losses
    out.update({f"grad.{name}": g for name, g in grads.items()})
    return out


@torch.no_grad()
def evaluate(model: MTPModel, tokens: np.ndarray, B: int, T: int, batches: int) -> Tuple[List[float], List[float]]:
    """mtp eval: per future head, mean CE and top-1 accuracy over sequential batches 0..K-1."""
    n = model.cfg.n_future
    loss_sum, hits = np.zeros(n), np.zeros(n)
    for k in range(batches):
        x, ys = get_batch(tokens, k, B, T, n)
        logits = model(x)
        loss_sum += head_losses(logits, ys).double().numpy()
        for i, (lg, y) in enumerate(zip(logits, ys)):
            hits[i] += (lg.argmax(-1) == y).sum().item()
    return list(loss_sum / batches), list(hits / (batches * B * T))


# ---------------------------------------------------------------------------------------
# Training (mtp train --no-shuffle, grad_accum 1)
# ---------------------------------------------------------------------------------------


def lr_at(step: int, steps: int, lr: float, min_lr: float, schedule: str, warmup: int) -> float:
    """Linear warmup over `warmup` steps, then cosine decay to min_lr (or constant lr)."""
    if step < warmup:
        return lr * (step + 1) / warmup
    if schedule == "constant":
        return lr
    assert schedule == "cosine", schedule
    progress = (step - warmup) / max(1, steps - warmup)
    return min_lr + 0.5 * (lr - min_lr) * (1.0 + math.cos(math.pi * progress))


def make_optimizer(model: MTPModel, weight_decay: float, beta1: float, beta2: float, eps: float) -> torch.optim.AdamW:
    """AdamW over the trained (requires_grad) params; weight decay only on 2-D params
    (embedding, output, matrices), 0 on norms. Frozen params are not in it at all."""
    trained = [p for p in model.parameters() if p.requires_grad]
    decay = [p for p in trained if p.dim() >= 2]
    no_decay = [p for p in trained if p.dim() < 2]
    groups = [{"params": decay, "weight_decay": weight_decay}, {"params": no_decay, "weight_decay": 0.0}]
    return torch.optim.AdamW(groups, lr=0.0, betas=(beta1, beta2), eps=eps)


def train(model: MTPModel, tokens: np.ndarray, *, batch: int, seq: int, steps: int, lr: float,
          min_lr: float = 0.0, schedule: str = "cosine", warmup: int = 0, weight_decay: float = 0.0,
          grad_clip: float = 0.0, beta1: float = 0.9, beta2: float = 0.95, eps: float = 1e-8,
          head_weights: Optional[List[float]] = None, log=None, head_history: Optional[list] = None) -> List[float]:
    """Step s uses sequential batch k = s; the loss is sum_i w_i * loss_i (head_weights,
    default all 1; a weight of 0 leaves that head's parameters without gradient, so AdamW
    only decays them). Parameters with requires_grad False (freeze_parts) are frozen: no
    gradient, no update, no decay, outside the clipping norm. Returns the weighted loss of
    every step; head_history, if given, gets each step's per-head losses."""
    opt = make_optimizer(model, weight_decay, beta1, beta2, eps)
    history = []
    for step in range(steps):
        x, ys = get_batch(tokens, step, batch, seq, model.cfg.n_future)
        opt.zero_grad(set_to_none=True)
        losses = head_losses(model(x), ys)
        loss = total_loss(losses, head_weights)
        loss.backward()
        if grad_clip > 0:  # the norm of the trained params' gradients only
            torch.nn.utils.clip_grad_norm_([p for p in model.parameters() if p.requires_grad], grad_clip)
        step_lr = lr_at(step, steps, lr, min_lr, schedule, warmup)
        for g in opt.param_groups:
            g["lr"] = step_lr
        opt.step()
        history.append(loss.item())
        if head_history is not None:
            head_history.append(losses.detach().numpy().copy())
        if log:
            log(f"step {step}: loss {loss.item():.6f} heads {losses.detach().numpy().round(4).tolist()} lr {step_lr:.3e}")
    return history


# ---------------------------------------------------------------------------------------
# Self-test: the twin's less obvious pieces against independent formulations
# ---------------------------------------------------------------------------------------


def _selftest() -> int:
    import tempfile

    torch.manual_seed(0)
    fails = 0

    def check(name, ok):
        nonlocal fails
        print(f"{'ok  ' if ok else 'FAIL'} {name}")
        fails += not ok

    # Rotary: Meta's complex formulation (llama/model.py apply_rotary_emb).
    B, T, H, hd = 2, 7, 3, 8
    x = torch.randn(B, T, H, hd)
    cos, sin = rope_cos_sin(hd, T, 10000.0)
    freqs = 1.0 / (10000.0 ** (torch.arange(0, hd, 2).float() / hd))
    cis = torch.polar(torch.ones(T, hd // 2), torch.outer(torch.arange(T).float(), freqs))
    ref = torch.view_as_real(torch.view_as_complex(x.reshape(B, T, H, hd // 2, 2)) * cis.view(1, T, 1, hd // 2))
    check("rope == Meta complex rotary", torch.allclose(apply_rope(x, cos, sin), ref.reshape(B, T, H, hd), atol=1e-6))

    # Config: Meta's FFN rule (Llama-2 7B: 11008; Llama-3 8B: 14336) and explicit override.
    check("ffn rule 7B", Config(dim=4096, n_layers=1, n_heads=32, vocab_size=8, multiple_of=256).ffn_hidden == 11008)
    check("ffn rule 8B", Config(dim=4096, n_layers=1, n_heads=32, vocab_size=8, multiple_of=1024,
                                ffn_dim_multiplier=1.3).ffn_hidden == 14336)
    check("ffn hidden_dim", Config(dim=64, n_layers=1, n_heads=4, vocab_size=8, hidden_dim=96).ffn_hidden == 96)

    # Attention with GQA against a per-head loop over positions.
    cfg = Config(dim=32, n_layers=3, n_heads=4, n_kv_heads=2, vocab_size=11, hidden_dim=48, n_future_tokens=2)
    att = Attention(cfg)
    xa = torch.randn(2, 5, cfg.dim)
    with torch.no_grad():
        q = apply_rope(att.wq(xa).view(2, 5, 4, 8), *rope_cos_sin(8, 5, cfg.rope_theta))
        k = apply_rope(att.wk(xa).view(2, 5, 2, 8), *rope_cos_sin(8, 5, cfg.rope_theta))
        v = att.wv(xa).view(2, 5, 2, 8)
        o = torch.zeros(2, 5, 4, 8)
        for b in range(2):
            for h in range(4):
                kv = h // 2
                for t in range(5):
                    s = torch.stack([q[b, t, h] @ k[b, u, kv] for u in range(t + 1)]) / math.sqrt(8)
                    o[b, t, h] = (torch.softmax(s, 0)[:, None] * v[b, : t + 1, kv]).sum(0)
        check("attention == loop reference (GQA, causal)", torch.allclose(att(xa), att.wo(o.reshape(2, 5, 32)), atol=1e-5))

    # Layout: names and parallel future heads.
    model = MTPModel(cfg)
    init_params(model, seed=1, norm_jitter=0.1)
    names = set(model.state_dict())
    check("names", {"layers.1.attention.wk.weight", "extra_heads.0.feed_forward.w2.weight", "norm.weight",
                    "output.weight", "tok_embeddings.weight"} <= names and "layers.2.ffn_norm.weight" not in names)
    tok = torch.randint(0, cfg.vocab_size, (2, 6))
    with torch.no_grad():
        z = model.tok_embeddings(tok)
        z = model.layers[0](z)
        out = model(tok)
        check("future heads applied in parallel to z",
              torch.allclose(out[1], model.output(model.norm(model.extra_heads[0](z)))))

    # Files round-trip; batches follow the contract.
    with tempfile.TemporaryDirectory() as d:
        save_model(os.path.join(d, "m.safetensors"), model)
        cfg2, model2 = load_model(os.path.join(d, "m.safetensors"))
        check("safetensors round trip", cfg2 == cfg and all(
            torch.equal(a, b) for a, b in zip(model.state_dict().values(), model2.state_dict().values())))
        write_shard(os.path.join(d, "s.bin"), np.arange(50) % 13)
        toks = read_shard(os.path.join(d, "s.bin"))
        check("shard round trip", np.array_equal(toks, np.arange(50) % 13))
        write_shard(os.path.join(d, "s32.bin"), np.arange(50) * 7919 + 65530)
        check("uint32 shard round trip", np.array_equal(read_shard(os.path.join(d, "s32.bin")),
                                                         np.arange(50) * 7919 + 65530))
    x, ys = get_batch(np.arange(10), 1, 2, 3, 2)  # s = 6, 9: wraps mod 10
    check("batch", x.tolist() == [[6, 7, 8], [9, 0, 1]] and ys[1].tolist() == [[8, 9, 0], [1, 2, 3]])

    # LR schedule.
    check("lr schedule", [round(lr_at(s, 5, 1.0, 0.1, "cosine", 2), 6) for s in range(5)] ==
          [0.5, 1.0, 1.0, round(0.1 + 0.45 * (1 + math.cos(math.pi / 3)), 6), round(0.1 + 0.45 * (1 + math.cos(2 * math.pi / 3)), 6)])

    print(f"selftest: {'all ok' if not fails else f'{fails} failed'}")
    return 1 if fails else 0


# ---------------------------------------------------------------------------------------
# CLI (mirrors the relevant `mtp` flags)
# ---------------------------------------------------------------------------------------


def main(argv=None) -> int:
    torch.set_num_threads(1)
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    sub = ap.add_subparsers(dest="cmd", required=True)
    sub.add_parser("selftest", help="check the twin against independent formulations")
    p = sub.add_parser("init", help="write a random model")
    p.add_argument("--config", required=True, help="params.json")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--norm-jitter", type=float, default=0.0)
    p.add_argument("--out", required=True)
    p = sub.add_parser("dump", help="what build/tests/model_dump writes: batch 0 logits, losses, grads")
    p.add_argument("model")
    p.add_argument("data")
    p.add_argument("B", type=int)
    p.add_argument("T", type=int)
    p.add_argument("schedule", choices=["sequential", "naive"], help="same result; the twin is always naive")
    p.add_argument("out")
    p = sub.add_parser("eval", help="per-future-head loss and accuracy, as JSON")
    p.add_argument("--json", action="store_true", help="accepted for drop-in use; output is always JSON")
    p.add_argument("--model", required=True)
    p.add_argument("--data", required=True)
    p.add_argument("--batch", type=int, default=4)
    p.add_argument("--seq", type=int, default=64)
    p.add_argument("--batches", type=int, default=1)
    p = sub.add_parser("train", help="mtp train --no-shuffle, in PyTorch")
    p.add_argument("--model", required=True)
    p.add_argument("--data", required=True)
    p.add_argument("--batch", type=int, default=4)
    p.add_argument("--seq", type=int, default=64)
    p.add_argument("--steps", type=int, default=10)
    p.add_argument("--lr", type=float, default=3e-4)
    p.add_argument("--min-lr", type=float, default=0.0)
    p.add_argument("--lr-schedule", choices=["cosine", "constant"], default="cosine")
    p.add_argument("--warmup", type=int, default=0)
    p.add_argument("--weight-decay", type=float, default=0.0)
    p.add_argument("--grad-clip", type=float, default=0.0)
    p.add_argument("--beta1", type=float, default=0.9)
    p.add_argument("--beta2", type=float, default=0.95)
    p.add_argument("--eps", type=float, default=1e-8)
    p.add_argument("--head-weights", help="loss weight of each future head, comma-separated [all 1]")
    p.add_argument("--n-future", type=int, help="keep future heads 1..K of the model's n [all]")
    p.add_argument("--freeze", default="", help="comma-separated parts: trunk, heads, embeddings, output")
    p.add_argument("--out", required=True, help="directory; writes model.safetensors")
    p.add_argument("--no-shuffle", action="store_true", help="accepted for drop-in use; always sequential")
    p.add_argument("--threads", type=int, default=1, help="PyTorch threads")
    a = ap.parse_args(argv)

    if a.cmd == "selftest":
        return _selftest()
    if a.cmd == "init":
        with open(a.config) as f:
            cfg = Config.from_dict(json.load(f))
        model = MTPModel(cfg)
        init_params(model, a.seed, norm_jitter=a.norm_jitter)
        save_model(a.out, model)
        return 0
    _, model = load_model(a.model)
    tokens = read_shard(a.data)
    if a.cmd == "dump":
        save_safetensors(a.out, dump_tensors(model, tokens, a.B, a.T))
        return 0
    if a.cmd == "eval":
        loss, acc = evaluate(model, tokens, a.batch, a.seq, a.batches)
        print(json.dumps({"head_loss": loss, "head_acc": acc}))
        return 0
    torch.set_num_threads(a.threads)
    if a.n_future:
        model = keep_heads(model, a.n_future)
    freeze_parts(model, [f for f in a.freeze.split(",") if f])
    train(model, tokens, batch=a.batch, seq=a.seq, steps=a.steps, lr=a.lr, min_lr=a.min_lr,
          schedule=a.lr_schedule, warmup=a.warmup, weight_decay=a.weight_decay, grad_clip=a.grad_clip,
          beta1=a.beta1, beta2=a.beta2, eps=a.eps, log=print,
          head_weights=[float(w) for w in a.head_weights.split(",")] if a.head_weights else None)
    os.makedirs(a.out, exist_ok=True)
    save_model(os.path.join(a.out, "model.safetensors"), model)
    return 0


if __name__ == "__main__":
    sys.exit(main())
