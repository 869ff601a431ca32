#!/usr/bin/env bash
set -e
B=${MTP_BUILD:-build}
exec /usr/bin/python3 tests/test_text.py --mtp "$B/mtp"
