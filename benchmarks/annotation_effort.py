"""Annotator time, simulated: how many human minutes a 2,000-frame video costs, per workflow.

    python benchmarks/annotation_effort.py [--frames 2000] [--subject 0] [--trials 1 2] [--workflows a b c]
        [--final-size 480] [--most-keyframes N]

A scripted annotator works on phantom recordings (ground truth on every frame) the way a person
works in the annotation dock, judging errors against the truth:

* it fixes the largest wrong region first (a connected region of one true class that the labels
  get wrong), one at a time, until the frame reaches its target;
* a region is painted with a brush of radius ``brush_radius``: the stroke length is the longer of
  area / brush width and the region's skeleton, cut into strokes of at most ``max_stroke_px``;
  each stroke costs ``stroke_s`` plus length / ``px_per_s``; the painted region becomes right;
* with the click assist (workflow c), a structure that is missing (labelled background) is first
  clicked at its innermost point: the fill (``sonolabel.assist.fill``) is kept when it raises the
  frame's mIoU (one click and one key), else dropped (one more key) and the region painted;
* every frame visited to be fixed after the last propagation costs one click;
* waiting for the tool (propagation, suggestions, drafts) counts as it runs on this machine.

Workflows, each followed by the same final pass that fixes every frame still below mIoU 0.95:

* **a**, the reference pipeline's way: a keyframe every 200 frames, each drawn from scratch, then
  one propagation;
* **b**, sonolabel's loop: the first keyframe where ``keyframes suggest`` puts it (the planned frame
  nearest the middle; the runs before the finish plan put it in the middle), drawn from scratch; propagate; then go
  to the suggested frame (``keyframes suggest``), correct the propagated labels there into a
  keyframe, re-propagate its two segments (the passes the correction leaves unchanged are kept),
  and repeat while keyframes pay: the loop stops after two keyframes in a row each removed fewer
  frames below 0.95 than their own cost would fix by hand (``frame_fix_s`` per frame; the reviewer
  sees which frames are wrong, looking is not charged), or at one keyframe per 100 frames;
* **c**, (b) with the click assist, and the first keyframe of the subject's second recording
  drafted from the first recording's keyframes (``propagation/draft.py``);
* **d**, the suggestions' plan without the loop: each suggested frame, until the keyframes are dense
  enough to finish (``propagation.suggest.ready_to_finish``), starts from a draft (napari's *draft*,
  ``propagation.draft.draft_for``: the frame read from the video's keyframes so far, or from the
  subject's other recording before the first) and is corrected into a keyframe with the brush; no
  propagation until the last one. The click assist is left out: on a keyframe it costs more than the
  brush under this time model (docs/annotation-effort.md).

``--final-size 480`` finishes every workflow with one propagation at that working size before the
fixing pass (napari's *Finish (fine)*): a's only propagation, and a full re-propagation after b's and
c's loop, which stays at the default size for its speed. The loop then stops where the suggestions say the
keyframes are dense enough for the fine pass (``propagation.suggest.ready_to_finish``), as the dock tells a
person, instead of judging keyframes by the frames they lift at the default size. ``--most-keyframes``
caps the loop.

Results go to benchmarks/results/annotation_effort.json and a table in docs/annotation-effort.md.
"""

from __future__ import annotations

import argparse
import json
import math
import platform
import sys
import tempfile
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np
from scipy import ndimage as ndi

RESULTS = Path(__file__).parent / "results"
N_CLASSES = 8


@dataclass
class TimeModel:
    stroke_s: float = 2.0  # to start a stroke (aim, press)
    px_per_s: float = 300.0  # brush speed along a stroke
    click_s: float = 1.0  # a click or a key
    brush_radius: int = 8  # px at 480 wide
    max_stroke_px: int = 400  # longer paths are several strokes
    min_area: int = 10  # wrong regions smaller than this are not worth a stroke
    keyframe_target: float = 0.98  # a keyframe is drawn or corrected to this mIoU
    frame_target: float = 0.95  # every frame must reach this
    assist_min_area: int = 400  # the assist is tried on missing structures at least this large
    frame_fix_s: float = 5.0  # what fixing one frame below target costs, about (workflow a measured 4-5 s)


def miou(labels: np.ndarray, truth: np.ndarray) -> float:
    """Mean IoU over the classes present in either map."""
    cm = np.bincount(truth.ravel().astype(np.int64) * N_CLASSES + labels.ravel(), minlength=N_CLASSES**2).reshape(N_CLASSES, N_CLASSES)
    inter = np.diag(cm)
    union = cm.sum(0) + cm.sum(1) - inter
    return float((inter[union > 0] / union[union > 0]).mean())


@dataclass
class Tally:
    draw_s: float = 0.0  # keyframes
    fix_s: float = 0.0  # the final pass over frames below target
    wait_s: float = 0.0  # propagation, suggestions, drafts
    finish_wait_s: float = 0.0  # of which the final fine pass (--final-size), a batch job a person need not sit through
    strokes: int = 0
    clicks: int = 0
    assist_kept: int = 0
    keyframes: list[int] = field(default_factory=list)
    trace: list[list] = field(default_factory=list)  # the loop: [keyframes, frames below target] after each propagation

    @property
    def human_min(self) -> float:
        return (self.draw_s + self.fix_s + self.wait_s) / 60


class Annotator:
    """Corrects a frame region by region against the truth, charging time by :class:`TimeModel`."""

    def __init__(self, model: TimeModel, tally: Tally, assist: bool):
        self.m, self.tally, self.assist = model, tally, assist

    def _stroke_cost(self, region: np.ndarray) -> tuple[float, int]:
        from skimage.morphology import skeletonize

        area = int(region.sum())
        length = max(area / (2 * self.m.brush_radius), float(skeletonize(region).sum()))
        n = max(1, math.ceil(length / self.m.max_stroke_px))
        return n * self.m.stroke_s + length / self.m.px_per_s, n

    def _largest_wrong(self, labels: np.ndarray, truth: np.ndarray) -> tuple[np.ndarray, int] | None:
        wrong = labels != truth
        best, best_area, best_cls = None, self.m.min_area - 1, 0
        for c in np.unique(truth[wrong]):
            comp, n = ndi.label(wrong & (truth == c))
            if n == 0:
                continue
            areas = np.bincount(comp.ravel())[1:]
            i = int(areas.argmax())
            if areas[i] > best_area:
                best, best_area, best_cls = comp == i + 1, int(areas[i]), int(c)
        return None if best is None else (best, best_cls)

    def correct(self, image: np.ndarray, labels: np.ndarray, truth: np.ndarray, target: float) -> tuple[np.ndarray, float]:
        """``labels`` corrected until they reach ``target`` (or nothing worth a stroke is left); seconds spent."""
        from sonolabel.assist import click_disk, fill

        labels, spent = labels.copy(), 0.0
        while miou(labels, truth) < target:
            found = self._largest_wrong(labels, truth)
            if found is None:
                break
            region, cls = found
            depth = ndi.distance_transform_edt(region) if self.assist and region.sum() >= self.m.assist_min_area else None
            if depth is not None and depth.max() >= 2 * self.m.brush_radius and (labels[region] == 0).mean() > 0.9:
                y, x = np.unravel_index(depth.argmax(), region.shape)
                proposal = fill(image, labels, click_disk(region.shape, y, x, self.m.brush_radius), cls)
                trial = labels.copy()
                trial[proposal] = cls
                spent += 2 * self.m.click_s
                self.tally.clicks += 2
                if miou(trial, truth) > miou(labels, truth):
                    labels = trial
                    self.tally.assist_kept += 1
                    continue
                spent += self.m.click_s
                self.tally.clicks += 1
            seconds, n = self._stroke_cost(region)
            labels[region] = cls
            spent += seconds
            self.tally.strokes += n
        return labels, spent


def render_video(subject: int, trial: int, n: int) -> tuple[np.ndarray, np.ndarray]:
    from sonolabel.phantom.render import PhantomRenderer, make_sequence

    r = PhantomRenderer(make_sequence(subject, trial, n))
    frames, labels = zip(*(r.render(t) for t in range(n)))
    return np.stack(frames), np.stack(labels)


def add_video(project, vid: str, frames: np.ndarray, subject: int):
    with project.staged_video(vid, len(frames), *frames.shape[1:], {"subject": f"sub-{subject:02d}", "fps": 20.0}) as v:
        for i in range(0, len(frames), 64):
            v.frames[i : i + 64] = frames[i : i + 64]
    return project.video(vid)


def final_pass(video, frames: np.ndarray, truth: np.ndarray, annotator: Annotator, tally: Tally) -> dict:
    """Fix every frame below the target; the quality before and after."""
    keys = set(video.annotated_frames())
    before, after, fixed = [], [], 0
    for t in range(len(frames)):
        lab = np.asarray(video.annotated[t]) if t in keys else np.asarray(video.propagated[t])
        q = miou(lab, truth[t])
        before.append(q)
        if q < annotator.m.frame_target:
            lab, spent = annotator.correct(frames[t], lab, truth[t], annotator.m.frame_target)
            tally.fix_s += spent + annotator.m.click_s
            tally.clicks += 1
            fixed += 1
            q = miou(lab, truth[t])
        after.append(q)
    return {
        "frames_fixed": fixed,
        "before_mean": float(np.mean(before)),
        "before_worst": float(np.min(before)),
        "below_target_before": float(np.mean(np.array(before) < annotator.m.frame_target)),
        "after_mean": float(np.mean(after)),
        "after_worst": float(np.min(after)),
    }


def below_target(video, truth: np.ndarray, target: float) -> int:
    """Frames whose labels are below ``target`` (what the simulated reviewer sees; not charged)."""
    return int((frame_quality(video, truth) < target).sum())


def frame_quality(video, truth: np.ndarray) -> np.ndarray:
    """Per-frame mIoU of the propagated labels; NaN on keyframes."""
    keys = set(video.annotated_frames())
    labels = np.asarray(video.propagated[:])
    return np.array([np.nan if t in keys else miou(labels[t], truth[t]) for t in range(len(truth))])


def propagate(video, cache, tally: Tally, size: int | None = None) -> None:
    """Propagate training-free at working size ``size`` (None: the default), charging the wait."""
    from sonolabel.propagation import PropagationConfig
    from sonolabel.propagation.propagate import propagate_video

    config = PropagationConfig(mode="free", device="cpu")
    config.working_size = size or config.working_size
    t0 = time.perf_counter()
    propagate_video(video, config, cache=cache)
    tally.wait_s += time.perf_counter() - t0
    if size:
        tally.finish_wait_s += time.perf_counter() - t0


def draw_keyframe(video, t: int, frames: np.ndarray, truth: np.ndarray, annotator: Annotator, tally: Tally, draft=None) -> None:
    """Keyframe ``t`` as the dock makes it: from ``draft()`` (its time charged as waiting) or from nothing,
    corrected with the brush, saved."""
    start = np.zeros(frames.shape[1:], np.uint8)
    if draft is not None:
        t0 = time.perf_counter()
        start = draft()
        tally.wait_s += time.perf_counter() - t0
    lab, spent = annotator.correct(frames[t], start, truth[t], annotator.m.keyframe_target)
    tally.draw_s += spent
    video.save_annotation(t, lab)
    tally.keyframes.append(t)


def run_workflow(
    kind: str, project, vid: str, frames: np.ndarray, truth: np.ndarray, model: TimeModel, final_size: int | None = None, most: int | None = None
) -> dict:
    """One workflow on one video. ``final_size``: the working size of the last propagation before the
    fixing pass (a's only one; after b's and c's loop, which runs at the default, a full re-propagation).
    ``most``: the loop's keyframes at most (default one per 100 frames)."""
    from sonolabel.propagation.draft import draft_for, draft_source
    from sonolabel.propagation.passes import PassCache
    from sonolabel.propagation.suggest import evenly_spaced, ready_to_finish, suggest_keyframes

    video = project.video(vid)
    tally = Tally()
    annotator = Annotator(model, tally, assist=kind == "c")
    n = len(frames)
    if kind == "a":
        for t in evenly_spaced(n, 200):
            draw_keyframe(video, t, frames, truth, annotator, tally)
        propagate(video, None, tally, final_size)
    elif kind == "d":
        while not ready_to_finish(n, tally.keyframes):
            t = suggest_keyframes(video, count=1)[0]
            drafted = tally.keyframes or draft_source(video) is not None
            draw_keyframe(video, t, frames, truth, annotator, tally, (lambda: draft_for(video, t)[0]) if drafted else None)
        propagate(video, None, tally, final_size)
    else:
        cache = PassCache()
        t = suggest_keyframes(video, count=1)[0]
        drafted = kind == "c" and draft_source(video) is not None
        draw_keyframe(video, t, frames, truth, annotator, tally, (lambda: draft_for(video, t)[0]) if drafted else None)
        propagate(video, cache, tally)
        bad, unpaid = below_target(video, truth, model.frame_target), 0
        tally.trace.append([1, bad])

        def go_on() -> bool:  # finished finely: until the suggestions say the keyframes are dense enough
            if final_size:
                return not ready_to_finish(n, tally.keyframes)
            return unpaid < 2

        while len(tally.keyframes) < (most or n // 100) and bad and go_on():
            spent_before = tally.draw_s + tally.wait_s
            t0 = time.perf_counter()
            t = suggest_keyframes(video, count=1)[0]
            tally.wait_s += time.perf_counter() - t0
            draw_keyframe(video, t, frames, truth, annotator, tally, lambda: np.asarray(video.propagated[t]))
            propagate(video, cache, tally)
            before, bad = bad, below_target(video, truth, model.frame_target)
            tally.trace.append([len(tally.keyframes), bad])
            if not final_size:
                paid = (before - bad) * model.frame_fix_s >= tally.draw_s + tally.wait_s - spent_before
                unpaid = 0 if paid else unpaid + 1
        if final_size:
            propagate(video, None, tally, final_size)
    quality = final_pass(video, frames, truth, annotator, tally)
    row = {"workflow": kind, "video": vid, "final_size": final_size, "human_min": tally.human_min, **asdict(tally)}
    return {**row, "keyframes_used": len(tally.keyframes), **quality}


def least_like_keyframes(video, keys: list[int], count: int, stride: int, config=None) -> list[int]:
    """The frames (every ``stride``-th) whose smallest key dissimilarity to the chosen frames is largest: the
    former suggestion rule (after XMem++'s annotation-candidate selection), kept here to compare with."""
    import torch

    from sonolabel.propagation import PropagationConfig
    from sonolabel.propagation.engine import Engine

    engine = Engine(config or PropagationConfig(device="cpu"), len(video.project.palette))
    candidates = [t for t in range(0, video.n_frames, stride) if t not in set(keys)]
    if not candidates:
        return []

    def descriptors(frames: list[int]) -> torch.Tensor:
        out = []
        for i in range(0, len(frames), 64):
            k = engine.encode(np.stack([video.frames[t] for t in frames[i : i + 64]]))
            out.append(torch.nn.functional.normalize(k.flatten(1), dim=1))
        return torch.cat(out)

    cand = descriptors(candidates)
    dissim = (1 - cand @ descriptors(keys).T).min(1).values
    picked = []
    for _ in range(min(count, len(candidates))):
        i = int(dissim.argmax())
        picked.append(candidates[i])
        dissim = torch.minimum(dissim, 1 - cand @ cand[i])
        dissim[i] = -1
    return picked


def keyframe_curve(frames: np.ndarray, truth: np.ndarray, tmp: Path, most: int) -> dict:
    """Mean and worst mIoU, and frames below 0.95, against the number of (true) keyframes: placed evenly,
    picked one at a time by ``keyframes suggest``, and by the older rule (frames least like the keyframes)."""
    from sonolabel.propagation import PropagationConfig
    from sonolabel.propagation.passes import PassCache
    from sonolabel.propagation.propagate import propagate_video
    from sonolabel.propagation.suggest import evenly_spaced, suggest_keyframes
    from sonolabel.store import Project

    config, n, out = PropagationConfig(mode="free", device="cpu"), len(frames), {}

    def point(video) -> dict:
        q = frame_quality(video, truth)
        return {"keyframes": len(video.annotated_frames()), "mean": float(np.nanmean(q)), "worst": float(np.nanmin(q)), "below_0.95": int((q < 0.95).sum())}

    for method in ("evenly", "suggest", "least_like"):
        project = Project.create(tmp / f"curve-{method}")
        video = add_video(project, "v", frames, 0)
        cache, rows = PassCache(), []
        counts = sorted({1, 2, 3, 5, 7, most})
        for k in range(1, most + 1):
            if method == "evenly":
                if k not in counts:
                    continue
                project.close()
                project = Project.create(tmp / f"curve-{method}-{k}")
                video = add_video(project, "v", frames, 0)
                picks = evenly_spaced(n, count=k)
            elif k == 1:
                picks = evenly_spaced(n, count=1)
            elif method == "suggest":
                picks = suggest_keyframes(video, count=1)
            else:
                picks = least_like_keyframes(video, video.annotated_frames(), 1, 5, None)
            for t in picks:
                video.save_annotation(t, truth[t])
            propagate_video(video, config, cache=cache if method != "evenly" else None)
            rows.append(point(video))
            print(method, rows[-1], flush=True)
        out[method] = rows
        project.close()
    return out


def save_rows(path: Path, rows: list[dict], args, model: TimeModel) -> None:
    """Write the results so far, keeping rows of workflows or videos this run did not redo."""
    old = json.loads(path.read_text()).get("rows", []) if path.exists() else []
    done = {(r["workflow"], r["video"]) for r in rows}
    rows = [r for r in old if (r["workflow"], r["video"]) not in done] + rows
    totals = {k: sum(r["human_min"] for r in rows if r["workflow"] == k) for k in sorted({r["workflow"] for r in rows})}
    out = {"frames": args.frames, "subject": args.subject, "trials": args.trials, "final_size": args.final_size, "most_keyframes": args.most_keyframes}
    out["time_model"] = asdict(model)
    out.update(rows=rows, human_min=totals)
    # the final fine pass is a batch job (`sonolabel propagate --fine`): a person can leave it running and move on
    unattended = {
        k: sum(r["human_min"] - r["finish_wait_s"] / 60 for r in rows if r["workflow"] == k) for k in totals if all("finish_wait_s" in r for r in rows)
    }
    out.update(human_min_finish_unattended=unattended)
    for k in ("b", "c", "d"):
        if "a" in totals and k in totals:
            out[f"{k}_over_a"] = totals[k] / totals["a"]
            if k in unattended and unattended["a"]:
                out[f"{k}_over_a_finish_unattended"] = unattended[k] / unattended["a"]
    out["machine"] = f"{platform.machine()}, {__import__('os').cpu_count()} cores, python {sys.version.split()[0]}"
    path.write_text(json.dumps(out, indent=1))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--frames", type=int, default=2000)
    ap.add_argument("--subject", type=int, default=0)
    ap.add_argument("--trials", type=int, nargs="+", default=[1, 2])
    ap.add_argument("--workflows", nargs="+", default=["a", "b", "c"], choices=("a", "b", "c", "d"))
    ap.add_argument("--final-size", type=int, default=None, help="working size of the last propagation before fixing (default: the loop's)")
    ap.add_argument("--most-keyframes", type=int, default=None, help="the loop's keyframes at most (default: one per 100 frames)")
    ap.add_argument("--out", default=None, help="results file (default: annotation_effort.json, or one named after --final-size and --most-keyframes)")
    ap.add_argument("--curve", type=int, default=0, metavar="N", help="instead: mIoU against 1..N keyframes per placement, on the first trial")
    args = ap.parse_args()
    variant = (f"-final{args.final_size}" if args.final_size else "") + (f"-most{args.most_keyframes}" if args.most_keyframes else "")
    args.out = args.out or str(RESULTS / f"annotation_effort{variant}.json")
    from sonolabel.store import Project

    model = TimeModel()
    videos = {trial: render_video(args.subject, trial, args.frames) for trial in args.trials}
    rows = []
    if args.curve:
        frames, truth = videos[args.trials[0]]
        with tempfile.TemporaryDirectory() as tmp:
            curve = keyframe_curve(frames, truth, Path(tmp), args.curve)
        out = {"frames": args.frames, "subject": args.subject, "trial": args.trials[0], "curve": curve}
        (RESULTS / "keyframe_curve.json").write_text(json.dumps(out, indent=1))
        return
    with tempfile.TemporaryDirectory() as tmp:
        for kind in args.workflows:
            project = Project.create(Path(tmp) / kind)
            for trial, (frames, truth) in videos.items():
                vid = f"sub-{args.subject:02d}-T{trial}"
                add_video(project, vid, frames, args.subject)
                row = run_workflow(kind, project, vid, frames, truth, model, args.final_size, args.most_keyframes)
                rows.append(row)
                save_rows(Path(args.out), rows, args, model)
                print(
                    f"{kind} {vid}: {row['human_min']:.1f} min (draw {row['draw_s'] / 60:.1f}, wait {row['wait_s'] / 60:.1f}, "
                    f"of which the fine pass {row['finish_wait_s'] / 60:.1f}, fix {row['fix_s'] / 60:.1f}), "
                    f"{row['keyframes_used']} keyframes, {row['strokes']} strokes, {row['clicks']} clicks, "
                    f"{row['frames_fixed']} frames fixed; mIoU {row['before_mean']:.3f} (worst {row['before_worst']:.3f}) "
                    f"-> {row['after_mean']:.3f} (worst {row['after_worst']:.3f})",
                    flush=True,
                )
            project.close()
    out = json.loads(Path(args.out).read_text())
    print(json.dumps({k: v for k, v in out.items() if k.startswith("human_min") or "_over_a" in k}))


if __name__ == "__main__":
    main()
