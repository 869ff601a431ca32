"""Shared by the Python CLI tests: the --mtp argument, pass/fail counting, and the closing
line `N passed, M failed` with a non-zero exit on failure."""
import argparse
import sys


def mtp_binary():
    ap = argparse.ArgumentParser()
    ap.add_argument("--mtp", default="build/mtp")
    return ap.parse_args().mtp


class Tally:
    def __init__(self):
        self.passed = self.failed = 0

    def check(self, ok, what):
        if ok:
            self.passed += 1
        else:
            self.failed += 1
            print("FAIL", what)

    def finish(self):
        print(f"{self.passed} passed, {self.failed} failed")
        sys.exit(1 if self.failed else 0)
