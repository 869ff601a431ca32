#!/usr/bin/env bash
# test_nonfinite.sh: a run whose loss or gradient norm is not finite stops cleanly (tests/test_nonfinite.py).
set -e
B=${MTP_BUILD:-build}
exec /usr/bin/python3 tests/test_nonfinite.py --mtp "$B/mtp"
