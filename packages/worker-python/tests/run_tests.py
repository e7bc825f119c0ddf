"""Runs the conformance tests (``python3 tests/run_tests.py``, what ``npm test`` runs here) and
writes their counts to ``.vitest-report.json`` in the shape vitest's JSON reporter uses, so
scripts/test-summary.mjs adds them to the monorepo's closing ``tests: N passed`` line."""

import json
import os
import sys
import unittest

HERE = os.path.dirname(os.path.abspath(__file__))
REPORT = os.path.join(os.path.dirname(HERE), ".vitest-report.json")


def main() -> int:
    sys.path.insert(0, HERE)
    suite = unittest.defaultTestLoader.discover(HERE, top_level_dir=HERE)
    result = unittest.TextTestRunner(verbosity=2).run(suite)
    failed = len(result.failures) + len(result.errors) + len(result.unexpectedSuccesses)
    skipped = len(result.skipped)
    report = {
        "numTotalTests": result.testsRun,
        "numPassedTests": result.testsRun - failed - skipped,
        "numFailedTests": failed,
        "numPendingTests": skipped,
        "numTodoTests": 0,
        "success": result.wasSuccessful(),
    }
    with open(REPORT, "w") as f:
        json.dump(report, f)
    print(f"python: {report['numPassedTests']} passed, {failed} failed, {skipped} skipped")
    return 0 if result.wasSuccessful() else 1


if __name__ == "__main__":
    sys.exit(main())
