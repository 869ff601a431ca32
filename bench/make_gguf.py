#!/usr/bin/python3
"""Write a random-weight llama GGUF (F32) for benchmarking with llama.cpp.

Usage: make_gguf.py LLAMA_CPP_DIR OUT.gguf [--layers N] [--seed S]

Uses llama.cpp's own gguf-py (LLAMA_CPP_DIR/gguf-py). Weights are N(0, 0.02),
norms are 1. Tensors are generated and written one at a time, so memory stays
at about one tensor (the 32000x2048 embedding, 262 MB) regardless of depth.
Shape: dim 2048, heads 16/16, FFN 5632, vocab 32000, context 2048.
"""
import argparse
import os
import sys

import numpy as np

DIM, HEADS, KV_HEADS, FFN, VOCAB, CTX = 2048, 16, 16, 5632, 32000, 2048
ROPE_THETA, RMS_EPS, STD = 10000.0, 1e-5, 0.02

ap = argparse.ArgumentParser()
ap.add_argument("llama_cpp")
ap.add_argument("out")
ap.add_argument("--layers", type=int, default=17)
ap.add_argument("--seed", type=int, default=0)
args = ap.parse_args()

sys.path.insert(0, os.path.join(args.llama_cpp, "gguf-py"))
try:  # gguf-py's vocab.py imports sentencepiece at import time; we never use it
    import sentencepiece  # noqa: F401
except ImportError:
    import types
    sys.modules["sentencepiece"] = types.ModuleType("sentencepiece")
    sys.modules["sentencepiece"].SentencePieceProcessor = None
import gguf  # noqa: E402
from gguf import MODEL_TENSOR as T  # noqa: E402

ARCH = gguf.MODEL_ARCH.LLAMA
arch_name = gguf.MODEL_ARCH_NAMES[ARCH]


def tname(t, bid=None):
    return gguf.TENSOR_NAMES[t].format(bid=bid) + ".weight"


# (name, numpy shape) in file order; numpy shape is the reverse of ggml ne.
kvd = DIM * KV_HEADS // HEADS
plan = [(tname(T.TOKEN_EMBD), (VOCAB, DIM))]
for i in range(args.layers):
    plan += [
        (tname(T.ATTN_NORM, i), (DIM,)),
        (tname(T.ATTN_Q, i), (DIM, DIM)),
        (tname(T.ATTN_K, i), (kvd, DIM)),
        (tname(T.ATTN_V, i), (kvd, DIM)),
        (tname(T.ATTN_OUT, i), (DIM, DIM)),
        (tname(T.FFN_NORM, i), (DIM,)),
        (tname(T.FFN_GATE, i), (FFN, DIM)),
        (tname(T.FFN_UP, i), (FFN, DIM)),
        (tname(T.FFN_DOWN, i), (DIM, FFN)),
    ]
plan += [(tname(T.OUTPUT_NORM), (DIM,)), (tname(T.OUTPUT), (VOCAB, DIM))]

w = gguf.GGUFWriter(args.out, arch_name)
w.add_name(f"random-llama-{args.layers}L")
w.add_file_type(gguf.LlamaFileType.ALL_F32)
w.add_context_length(CTX)
w.add_embedding_length(DIM)
w.add_block_count(args.layers)
w.add_feed_forward_length(FFN)
w.add_head_count(HEADS)
w.add_head_count_kv(KV_HEADS)
w.add_rope_dimension_count(DIM // HEADS)
w.add_rope_freq_base(ROPE_THETA)
w.add_layer_norm_rms_eps(RMS_EPS)
w.add_vocab_size(VOCAB)

# Minimal SentencePiece-style vocab: <unk> <s> </s>, 256 byte tokens, filler.
TT = gguf.TokenType
tokens = ["<unk>", "<s>", "</s>"] + [f"<0x{b:02X}>" for b in range(256)]
types = [TT.UNKNOWN, TT.CONTROL, TT.CONTROL] + [TT.BYTE] * 256
n_fill = VOCAB - len(tokens)
tokens += [f"\u2581t{i}" for i in range(n_fill)]
types += [TT.NORMAL] * n_fill
scores = [0.0] * (VOCAB - n_fill) + [-float(i) for i in range(n_fill)]
w.add_tokenizer_model("llama")
w.add_token_list(tokens)
w.add_token_scores(scores)
w.add_token_types(types)
w.add_unk_token_id(0)
w.add_bos_token_id(1)
w.add_eos_token_id(2)
w.add_add_bos_token(True)
w.add_add_eos_token(False)

for name, shape in plan:
    w.add_tensor_info(name, shape, np.dtype(np.float32), 4 * int(np.prod(shape)))
w.write_header_to_file()
w.write_kv_data_to_file()
w.write_ti_data_to_file()
for idx, (name, shape) in enumerate(plan):
    if len(shape) == 1:
        t = np.ones(shape, dtype=np.float32)
    else:
        rng = np.random.default_rng([args.seed, idx])
        t = rng.standard_normal(shape, dtype=np.float32)
        t *= STD
    w.write_tensor_data(t)
    print(f"\r{idx + 1}/{len(plan)} {name}", end="", file=sys.stderr, flush=True)
w.close()
print(f"\nwrote {args.out}: {os.path.getsize(args.out)} bytes", file=sys.stderr)
