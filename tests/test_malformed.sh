#!/bin/sh
# test_malformed.sh: the CLI's error contract on a corpus of bad inputs (tests/test_malformed.py).
# Run from the repo root; MTP_BUILD selects the build directory (default: build).
set -e
B=${MTP_BUILD:-build}
exec /usr/bin/python3 tests/test_malformed.py --mtp "$B/mtp"
