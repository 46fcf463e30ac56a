"""The robustness run (slow): the quality-asserting tests pass under 3 seeds and 2 thread settings."""

import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "benchmarks"))


@pytest.mark.slow
def test_quality_tests_hold_under_other_seeds_and_thread_counts():
    from robustness import run, table

    result = run([0, 1, 2], [1, 2])
    assert {r["returncode"] for r in result["runs"]} == {0}, table(result)
    assert result["figures"] and all(r["margin"] > 0 for r in result["figures"]), table(result)
