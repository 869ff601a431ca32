#!/bin/sh
# test_torch.sh: the whole C model against the PyTorch twin (tests/test_torch.py).
# Run from the repo root; MTP_BUILD selects the build directory (default: build).
set -e
B=${MTP_BUILD:-build}
exec /usr/bin/python3 tests/test_torch.py --mtp "$B/mtp" --dump "$B/tests/model_dump"
