#!/bin/sh
# test_finetune.sh: fine-tuning (--n-future, --freeze) against the PyTorch twin
# (tests/test_finetune.py). Run from the repo root; MTP_BUILD selects the build directory.
set -e
B=${MTP_BUILD:-build}
exec /usr/bin/python3 tests/test_finetune.py --mtp "$B/mtp"
