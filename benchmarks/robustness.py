"""The robustness run: every test that asserts a quality or timing figure, rerun under other seeds and
thread counts, with every margin reported.

A test asserts learning or quality with a threshold; this run shows how far above it the figure sits
when the data (SONOLABEL_TEST_SEED: added to each test's own seeds), torch's thread count
(SONOLABEL_TEST_THREADS) and OpenMP's (OMP_NUM_THREADS) change. Run it before changing such a test.

Run: python benchmarks/robustness.py [--seeds 0 1 2] [--threads 1 2]
Writes benchmarks/results/robustness.json and prints a table (docs/testing.md keeps the last one).
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]

QUALITY_TESTS = [
    "tests/test_rank.py::test_two_stage_run_learns_to_rank_and_reports_held_out_scores",
    "tests/test_propagation.py::test_beats_copying_nearest_keyframe_and_keeps_keyframes",
    "tests/test_propagation.py::test_class_missing_from_a_keyframe_and_appearing_later",
    "tests/test_propagation.py::test_readout_cost_barely_depends_on_class_count",
    "tests/test_review.py::test_injected_drift_is_flagged_and_clean_stretches_are_not",
    "tests/test_unet.py::test_one_epoch_lowers_the_loss",
    "tests/test_palette_quantize.py::test_jpeg_masks_quantize_sensibly",
    "tests/test_intake.py::test_mask_video_420_quantized_without_a_third_class",
    "tests/test_intake.py::test_real_logiq_capture_box_within_4px",
]


def run(seeds: list[int], threads: list[int], tests: list[str] = QUALITY_TESTS) -> dict:
    """Run ``tests`` once per (seed, threads); returns every recorded figure and each run's pytest outcome."""
    records, runs = [], []
    with tempfile.TemporaryDirectory() as tmp:
        for seed in seeds:
            for n in threads:
                margins = Path(tmp) / f"margins-{seed}-{n}.jsonl"
                env = {
                    **os.environ,
                    "SONOLABEL_TEST_SEED": str(seed),
                    "SONOLABEL_TEST_THREADS": str(n),
                    "OMP_NUM_THREADS": str(n),
                    "SONOLABEL_MARGINS": str(margins),
                    "HF_HUB_OFFLINE": "1",
                }
                t0 = time.time()
                r = subprocess.run(
                    [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "-o", "addopts=", *tests],
                    cwd=ROOT,
                    env=env,
                    capture_output=True,
                    text=True,
                )
                tail = r.stdout.strip().splitlines()[-1] if r.stdout.strip() else r.stderr[-300:]
                runs.append({"seed": seed, "threads": n, "returncode": r.returncode, "summary": tail, "seconds": round(time.time() - t0, 1)})
                print(f"seed {seed}, {n} thread(s): {tail}", flush=True)
                if margins.exists():
                    records += [json.loads(line) for line in margins.read_text().splitlines()]
    return {"seeds": seeds, "threads": threads, "runs": runs, "figures": records}


def table(result: dict) -> str:
    """Markdown: per test and figure, the threshold, the range of values, the smallest margin, passes."""
    rows: dict[tuple[str, str], list[dict]] = {}
    for r in result["figures"]:
        name = r["test"].split("::", 1)[1]
        rows.setdefault((name, r["figure"]), []).append(r)
    out = ["| test | figure | threshold | values (min - max) | smallest margin | passed |", "|---|---|---|---|---|---|"]
    for (test, figure), rs in sorted(rows.items()):
        values = [r["value"] for r in rs]
        passed = sum(r["margin"] > 0 for r in rs)
        sign = ">" if rs[0]["higher"] else "<"
        out.append(
            f"| `{test}` | {figure} | {sign} {rs[0]['threshold']:.4g} | {min(values):.4g} - {max(values):.4g} | "
            f"{min(r['margin'] for r in rs):.4g} | {passed} of {len(rs)} |"
        )
    return "\n".join(out)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    ap.add_argument("--threads", type=int, nargs="+", default=[1, 2])
    args = ap.parse_args()
    result = run(args.seeds, args.threads)
    (ROOT / "benchmarks" / "results" / "robustness.json").write_text(json.dumps(result, indent=1))
    print(table(result))
    sys.exit(0 if all(r["returncode"] == 0 for r in result["runs"]) else 1)


if __name__ == "__main__":
    main()
