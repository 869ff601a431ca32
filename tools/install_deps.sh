#!/usr/bin/env bash
# Installs the Debian packages mtp needs to build and test, if any are missing.
# Build: gcc, make, cJSON, OpenBLAS (OpenMP build), PCRE2, libunistring (NFC and Unicode
# properties for tokenizer.json). Tests and benchmarks: PyTorch, numpy, SentencePiece (the
# tokenizer reference and spm_train), clang (libFuzzer targets), node and npm (the
# tokenizer.json references and real tokenizer files, tests/npm: installed with npm ci from
# its lock file when tests/npm/node_modules is missing). mtp serve: libmicrohttpd; its test
# the openai client (tests/npm-serve, likewise). Training on many processes: Open MPI
# (mpicc, mpirun; the build goes without it).
set -euo pipefail
cd "$(dirname "$0")/.."
need="gcc make pkg-config libcjson-dev libopenblas-openmp-dev libpcre2-dev libunistring-dev libmicrohttpd-dev
      openmpi-bin libopenmpi-dev python3-torch python3-numpy python3-sentencepiece sentencepiece clang nodejs npm"
# node and npm may come from elsewhere than Debian (nodesource, nvm): then they are there
command -v node >/dev/null && command -v npm >/dev/null && need=$(echo $need | sed 's/nodejs//; s/npm//')
missing=$(for p in $need; do dpkg -s "$p" >/dev/null 2>&1 || echo "$p"; done)
if [ -n "$missing" ]; then
    echo "installing: $missing"
    sudo=""
    [ "$(id -u)" -ne 0 ] && sudo=sudo
    export DEBIAN_FRONTEND=noninteractive
    $sudo apt-get update -qq
    $sudo apt-get install -y -qq $missing >/dev/null
fi
for dir in tests/npm tests/npm-serve; do
    if [ ! -d $dir/node_modules ]; then
        echo "installing: $dir (npm ci)"
        npm ci --prefix $dir --no-audit --no-fund >/dev/null
    fi
done
