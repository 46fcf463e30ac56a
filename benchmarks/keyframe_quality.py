"""How exact must a keyframe be? Propagation from keyframes drawn from scratch against keyframes corrected from drafts.

    python benchmarks/keyframe_quality.py [--frames 1000] [--keyframes 5 10] [--targets 0.98 0.99 1.0]

The loop of docs/annotation-effort.md (workflow b) makes its keyframes by correcting propagated
drafts to mIoU 0.98, while the reference workflow (a) draws them from scratch, where the simulated
annotator's brush fills whole regions and so ends up exact. This measures what that difference
costs downstream, on one phantom recording (subject 0, trial 1) and evenly placed keyframes:

* the drafts are what propagation from the middle keyframe alone gives (the loop's first step);
* the middle keyframe is the truth in every row; every other keyframe is drawn from scratch by the
  simulated annotator (``annotation_effort.Annotator``, the same time model, as workflow a) or its
  draft is corrected until it reaches a target mIoU (1.0: until no wrong region worth a stroke is left);
* the video is then propagated (training-free) and every other frame scored against the truth.

Results go to benchmarks/results/keyframe_quality.json (quoted in docs/annotation-effort.md).
"""

from __future__ import annotations

import argparse
import json
import tempfile
import time
from dataclasses import asdict
from pathlib import Path

import numpy as np

from annotation_effort import RESULTS, Annotator, Tally, TimeModel, add_video, frame_quality, miou, render_video


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--frames", type=int, default=1000)
    ap.add_argument("--keyframes", type=int, nargs="+", default=[5, 10])
    ap.add_argument("--targets", type=float, nargs="+", default=[0.98, 0.99, 1.0], help="mIoU the drafts are corrected to")
    ap.add_argument("--out", default=str(RESULTS / "keyframe_quality.json"))
    args = ap.parse_args()
    from sonolabel.propagation import PropagationConfig
    from sonolabel.propagation.propagate import propagate_video
    from sonolabel.propagation.suggest import evenly_spaced
    from sonolabel.store import Project

    frames, truth = render_video(0, 1, args.frames)
    config = PropagationConfig(mode="free", device="cpu")
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        for count in args.keyframes:
            keys = evenly_spaced(args.frames, count=count)
            mid = keys[len(keys) // 2]
            project = Project.create(tmp / f"drafts-{count}")
            video = add_video(project, "v", frames, 0)
            video.save_annotation(mid, truth[mid])
            propagate_video(video, config)
            drafts = {t: np.asarray(video.propagated[t]) for t in keys if t != mid}
            project.close()
            for target in [None, *args.targets]:
                tally = Tally()
                annotator = Annotator(TimeModel(), tally, assist=False)
                project = Project.create(tmp / f"{count}-{target}")
                video = add_video(project, "v", frames, 0)
                for t in keys:
                    labels = truth[t]
                    if t != mid:  # drawn from scratch as workflow a does (to 0.98, which a brush filling whole regions overshoots), or corrected
                        start = np.zeros_like(truth[t]) if target is None else drafts[t]
                        labels, spent = annotator.correct(frames[t], start, truth[t], target or TimeModel().keyframe_target)
                        tally.draw_s += spent
                    video.save_annotation(t, labels)
                started = time.perf_counter()
                propagate_video(video, config)
                quality = frame_quality(video, truth)
                corrected = max(len(drafts), 1)
                rows.append(
                    {
                        "keyframes": count,
                        "keyframe_kind": "drawn from scratch" if target is None else f"draft corrected to {target}",
                        "draft_miou": float(np.mean([miou(d, truth[t]) for t, d in drafts.items()])),
                        "keyframe_miou": float(np.mean([miou(np.asarray(video.annotated[t]), truth[t]) for t in keys])),
                        "seconds_per_keyframe": tally.draw_s / corrected,
                        "strokes_per_keyframe": tally.strokes / corrected,
                        "frames_mean": float(np.nanmean(quality)),
                        "frames_worst": float(np.nanmin(quality)),
                        "frames_below_0.95": int((quality < 0.95).sum()),
                        "propagate_s": time.perf_counter() - started,
                    }
                )
                print(json.dumps(rows[-1]), flush=True)
                project.close()
    Path(args.out).write_text(json.dumps({"frames": args.frames, "subject": 0, "trial": 1, "time_model": asdict(TimeModel()), "rows": rows}, indent=1))


if __name__ == "__main__":
    main()
