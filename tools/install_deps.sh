#!/usr/bin/env bash
# Installs the Debian packages mtp needs to build and test, if any are missing.
# Build: gcc, make, cJSON, OpenBLAS (OpenMP build), PCRE2. Tests and benchmarks: PyTorch,
# numpy, SentencePiece (the tokenizer reference and spm_train), clang (libFuzzer targets).
set -euo pipefail
need="gcc make pkg-config libcjson-dev libopenblas-openmp-dev libpcre2-dev python3-torch python3-numpy
      python3-sentencepiece sentencepiece clang"
missing=$(for p in $need; do dpkg -s "$p" >/dev/null 2>&1 || echo "$p"; done)
[ -z "$missing" ] && exit 0
echo "installing: $missing"
sudo=""
[ "$(id -u)" -ne 0 ] && sudo=sudo
export DEBIAN_FRONTEND=noninteractive
$sudo apt-get update -qq
$sudo apt-get install -y -qq $missing >/dev/null
