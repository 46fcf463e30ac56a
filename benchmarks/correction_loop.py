"""How fast a correction shows: re-propagation after a keyframe is corrected or added.

    python benchmarks/correction_loop.py [--seeds 0 1] [--frames 801]

Phantom videos at 480x480, training-free mode, on this machine. Two corrections, each of which
re-propagates two segments (398 frames):

* **edit**: keyframes every 200 frames; keyframe 400 is corrected (one structure moved 10 px);
* **add**: keyframes every 400 frames; a keyframe is added at frame 600.

Each is timed the way the napari viewer runs it (the video's propagation passes kept in a
:class:`~sonolabel.propagation.passes.PassCache` since the first propagation; only the passes
that start at the corrected keyframe are read) and the way a new process runs it (``sonolabel
propagate``: all four passes read). Reported: seconds to the first frame written (next to the
correction) and to the end, and whether both ways give the same labels.
Results go to benchmarks/results/correction_loop.json.
"""

from __future__ import annotations

import argparse
import json
import platform
import tempfile
from pathlib import Path

import numpy as np

from propagation import build_project, render

RESULTS = Path(__file__).parent / "results"


def moved(labels: np.ndarray, cls: int, px: int) -> np.ndarray:
    """``labels`` with class ``cls`` moved ``px`` to the right (what it left becomes background)."""
    out = labels.copy()
    out[out == cls] = 0
    out[np.roll(labels == cls, px, axis=1)] = cls
    return out


def scenario(kind: str, frames: np.ndarray, labels: np.ndarray, tmp: Path) -> dict:
    from sonolabel.propagation import PropagationConfig
    from sonolabel.propagation.passes import PassCache
    from sonolabel.propagation.propagate import STATE_KEY, propagate_video

    config = PropagationConfig(mode="free", device="cpu")
    _, video = build_project(tmp / kind, frames, labels, every=200 if kind == "edit" else 400)
    cache = PassCache()
    full = propagate_video(video, config, cache=cache)
    t = 400 if kind == "edit" else 600
    video.save_annotation(t, moved(labels[t], 3, 10) if kind == "edit" else labels[t])
    warm = propagate_video(video, config, cache=cache)
    names = [n for n in video.state(STATE_KEY)["segments"] if str(t) in n.split("-")]
    first, last = t - 199, t + 199
    warm_labels = np.asarray(video.propagated[first : last + 1])
    state = video.state(STATE_KEY)
    for name in names:
        del state["segments"][name]
    video.set_state(STATE_KEY, state)
    cold = propagate_video(video, config)
    cold_labels = np.asarray(video.propagated[first : last + 1])
    keep = np.arange(first, last + 1) != t
    return {
        "kind": kind,
        "frames_repropagated": warm.frames_written,
        "first_propagation_fps": full.frames_written / full.seconds,
        "viewer_first_frame_s": warm.first_write_s,
        "viewer_total_s": warm.seconds,
        "new_process_first_frame_s": cold.first_write_s,
        "new_process_total_s": cold.seconds,
        "same_labels": bool((warm_labels[keep] == cold_labels[keep]).all()),
    }


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--seeds", type=int, nargs="+", default=[0, 1])
    ap.add_argument("--frames", type=int, default=801)
    args = ap.parse_args()
    rows = []
    for seed in args.seeds:
        frames, labels = map(np.stack, zip(*render(seed, args.frames)))
        with tempfile.TemporaryDirectory() as tmp:
            for kind in ("edit", "add"):
                rows.append({"seed": seed, **scenario(kind, frames, labels, Path(tmp))})
                print(json.dumps(rows[-1]), flush=True)
    doc = {"frames": args.frames, "size": 480, "rows": rows, "machine": f"{platform.machine()}, {__import__('os').cpu_count()} cores"}
    for key in ("viewer_first_frame_s", "viewer_total_s", "new_process_first_frame_s", "new_process_total_s"):
        doc[f"max_{key}"] = max(r[key] for r in rows)
    RESULTS.mkdir(exist_ok=True)
    (RESULTS / "correction_loop.json").write_text(json.dumps(doc, indent=1))
    print({k: round(v, 2) for k, v in doc.items() if k.startswith("max_")})


if __name__ == "__main__":
    main()
