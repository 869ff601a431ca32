#!/bin/sh
# test_vocab32.sh: a vocab-70001 model on uint32 shards against the PyTorch twin
# (tests/test_vocab32.py). Run from the repo root; MTP_BUILD selects the build directory.
set -e
B=${MTP_BUILD:-build}
exec /usr/bin/python3 tests/test_vocab32.py --mtp "$B/mtp"
