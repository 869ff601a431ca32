#!/bin/sh
# test_files.sh: header-only `mtp info` and a finite `mtp prepare` walk (tests/test_files.py).
set -e
B=${MTP_BUILD:-build}
exec /usr/bin/python3 tests/test_files.py --mtp "$B/mtp"
