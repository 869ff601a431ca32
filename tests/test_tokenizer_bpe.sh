#!/bin/sh
# test_tokenizer_bpe.sh: byte-level BPE (tokenizer.json) against tokenizers' JS port
# (tests/test_tokenizer_bpe.py); needs node and tests/npm/node_modules, else skips.
set -e
B=${MTP_BUILD:-build}
MTP_BUILD=$B exec /usr/bin/python3 tests/test_tokenizer_bpe.py
