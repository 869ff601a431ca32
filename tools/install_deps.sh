#!/usr/bin/env bash
# Installs the Debian packages mtp needs to build and test, if any are missing.
# Build: gcc, make, cJSON, OpenBLAS (OpenMP build), PCRE2. Tests and benchmarks: PyTorch,
# numpy, SentencePiece (the tokenizer reference and spm_train), clang (libFuzzer targets);
# mtp serve: libmicrohttpd; its test: node (with npm) and the openai client (tests/npm-serve, locked).
set -euo pipefail
need="gcc make pkg-config libcjson-dev libopenblas-openmp-dev libpcre2-dev python3-torch python3-numpy
      python3-sentencepiece sentencepiece clang libmicrohttpd-dev nodejs"
missing=$(for p in $need; do dpkg -s "$p" >/dev/null 2>&1 || echo "$p"; done)
if [ -n "$missing" ]; then
    echo "installing: $missing"
    sudo=""
    [ "$(id -u)" -ne 0 ] && sudo=sudo
    export DEBIAN_FRONTEND=noninteractive
    $sudo apt-get update -qq
    $sudo apt-get install -y -qq $missing >/dev/null
fi
npm_dir="$(dirname "$0")/../tests/npm-serve"
[ -d "$npm_dir/node_modules" ] || npm ci --prefix "$npm_dir" --no-audit --no-fund >/dev/null
