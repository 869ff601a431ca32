"""Shared by the Python tests: the --mtp argument, pass/fail/skip counting, and the closing
line `N passed, M failed, K skipped` (the line tests/run.sh sums) with a non-zero exit on
failure."""
import argparse
import sys


def mtp_binary():
    ap = argparse.ArgumentParser()
    ap.add_argument("--mtp", default="build/mtp")
    return ap.parse_args().mtp


class Tally:
    def __init__(self):
        self.passed = self.failed = self.skipped = 0

    def count(self, ok):
        """Counts one check without printing (for tests that print their own lines)."""
        if ok:
            self.passed += 1
        else:
            self.failed += 1
        return ok

    def check(self, ok, what):
        if not self.count(ok):
            print("FAIL", what)
        return ok

    def skip(self, reason):
        """A check that cannot run here: counted, with the reason."""
        self.skipped += 1
        print("SKIP", reason)

    def summary(self):
        """Prints the closing line; returns the exit status."""
        print(f"{self.passed} passed, {self.failed} failed, {self.skipped} skipped", flush=True)
        return 1 if self.failed else 0

    def finish(self):
        sys.exit(self.summary())
