#!/usr/bin/env bash
# Installs the Debian packages mtp needs to build and test, if any are missing.
# Build: gcc, make, cJSON, OpenBLAS (OpenMP build). Tests and benchmarks: PyTorch, numpy.
set -euo pipefail
need="gcc make pkg-config libcjson-dev libopenblas-openmp-dev python3-torch python3-numpy"
missing=$(for p in $need; do dpkg -s "$p" >/dev/null 2>&1 || echo "$p"; done)
[ -z "$missing" ] && exit 0
echo "installing: $missing"
sudo=""
[ "$(id -u)" -ne 0 ] && sudo=sudo
export DEBIAN_FRONTEND=noninteractive
$sudo apt-get update -qq
$sudo apt-get install -y -qq $missing >/dev/null
