"""How far apart keyframes may lie, per working size: frames below mIoU 0.95 against the gap between two keyframes.

    python benchmarks/keyframe_reach.py [--subjects 1 2 3 4] [--gaps 100 200 300 400 600] [--sizes 240 480] [--lead N]

One phantom recording per subject (trial 1), true labels as keyframes at gaps of the given lengths (their
order rotated from subject to subject, so that no gap always falls on the same stretch of the protocol),
propagated training-free at each working size. ``--lead N`` puts N frames before the first keyframe: an end
stretch, read from one side. Per stretch: the frames below 0.95 in it, the worst and the mean mIoU.

A keyframe that halves a gap of length G pays when the frames below 0.95 it removes, f(G) - 2 f(G/2), are
worth more to fix by hand than the keyframe costs to draw: the widest gap at which it no longer pays is
where ``propagation.suggest.ready_to_finish`` says a run finished at that size has keyframes enough
(docs/annotation-effort.md, *How far apart keyframes may lie*). Subject 0, on which annotation_effort.py
scores the workflows, is left out by default. Results accumulate in benchmarks/results/keyframe_reach.json.
"""

from __future__ import annotations

import argparse
import json
import platform
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
from annotation_effort import RESULTS, add_video, frame_quality, render_video


def run(subject: int, gaps: list[int], sizes: list[int], tmp: Path, lead: int = 0) -> dict:
    from sonolabel.propagation import PropagationConfig
    from sonolabel.propagation.propagate import propagate_video
    from sonolabel.store import Project

    order = gaps[subject % len(gaps) :] + gaps[: subject % len(gaps)]
    keys = [lead, *(lead + np.cumsum(order)).tolist()]
    frames, truth = render_video(subject, 1, keys[-1] + 1)
    out = {"subject": subject, "keyframes": keys, "lead": lead, "sizes": {}}
    for size in sizes:
        project = Project.create(tmp / f"s{subject}-{size}")
        video = add_video(project, "v", frames, subject)
        for k in keys:
            video.save_annotation(k, truth[k])
        config = PropagationConfig(mode="free", device="cpu")
        config.working_size = size
        t0 = time.perf_counter()
        propagate_video(video, config)
        seconds = time.perf_counter() - t0
        q = frame_quality(video, truth)
        per_gap = []
        if lead:
            inside = q[:lead]
            per_gap.append({"end": lead, "below_0.95": int((inside < 0.95).sum()), "worst": float(inside.min()), "mean": float(inside.mean())})
        for a, b in zip(keys[:-1], keys[1:]):
            inside = q[a + 1 : b]
            per_gap.append({"gap": b - a, "from": a, "below_0.95": int((inside < 0.95).sum()), "worst": float(inside.min()), "mean": float(inside.mean())})
        out["sizes"][str(size)] = {"seconds": seconds, "gaps": per_gap, "miou": np.round(q, 4).tolist()}
        project.close()
        print(subject, size, f"{seconds:.0f} s", [(g.get("gap", f"end {lead}"), g["below_0.95"], round(g["worst"], 3)) for g in per_gap], flush=True)
    return out


def summary(runs: list[dict]) -> dict:
    """Per size and gap (``end N``: an end stretch of N frames): the frames below 0.95 per subject and their mean."""
    table = {}
    for size in sorted({s for r in runs for s in r["sizes"]}, key=int):
        table[size] = {}
        stretches = [x for r in runs if size in r["sizes"] for x in r["sizes"][size]["gaps"]]
        for name in sorted({_name(x) for x in stretches}, key=lambda n: (n.startswith("end"), int(n.split()[-1]))):
            rows = [x for x in stretches if _name(x) == name]
            table[size][name] = {
                "below_0.95": [x["below_0.95"] for x in rows],
                "mean_below_0.95": float(np.mean([x["below_0.95"] for x in rows])),
                "worst": float(min(x["worst"] for x in rows)),
            }
    return table


def _name(stretch: dict) -> str:
    return str(stretch["gap"]) if "gap" in stretch else f"end {stretch['end']}"


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--subjects", type=int, nargs="+", default=[1, 2, 3, 4])
    ap.add_argument("--gaps", type=int, nargs="+", default=[100, 200, 300, 400, 600])
    ap.add_argument("--sizes", type=int, nargs="+", default=[240, 480])
    ap.add_argument("--lead", type=int, default=0, help="frames before the first keyframe (an end stretch)")
    ap.add_argument("--out", default=str(RESULTS / "keyframe_reach.json"))
    args = ap.parse_args()
    path = Path(args.out)
    old = json.loads(path.read_text()) if path.exists() else {}
    runs = old.get("runs", [])
    layout = lambda r: (r["subject"], tuple(np.diff(r["keyframes"])), r.get("lead", 0))  # noqa: E731
    done = {layout(r) for r in runs if set(map(str, args.sizes)) <= set(r["sizes"])}
    with tempfile.TemporaryDirectory() as tmp:
        for s in args.subjects:
            order = args.gaps[s % len(args.gaps) :] + args.gaps[: s % len(args.gaps)]
            if (s, tuple(order), args.lead) in done:
                continue
            runs.append(run(s, args.gaps, args.sizes, Path(tmp), args.lead))
            out = {"runs": runs, "summary": summary(runs)}
            out["machine"] = f"{platform.machine()}, {__import__('os').cpu_count()} cores, python {sys.version.split()[0]}"
            path.write_text(json.dumps(out, indent=1))
    print(json.dumps(summary(runs), indent=1))


if __name__ == "__main__":
    main()
