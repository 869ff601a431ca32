#!/usr/bin/env bash
# The PyTorch checkpoint reader against torch.save's files and hostile ones (tests/test_pth.py).
set -e
B=${MTP_BUILD:-build}
exec /usr/bin/python3 tests/test_pth.py --mtp "$B/mtp"
