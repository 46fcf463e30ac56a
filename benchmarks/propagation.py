"""Propagation benchmark on phantom projects (keyframes every 200 frames, ground truth on every frame).

    python benchmarks/propagation.py quality [--seeds 0 1 2] [--frames 1001] [--train-minutes 10]
    python benchmarks/propagation.py speed   [--sizes 240 480] [--lengths 500 2000 8000]

quality: mean and worst-frame mIoU of copying the nearest keyframe, chained optical flow from both
keyframes (scikit-image ILK at 240x240, each frame from the nearer keyframe), ours training-free,
and ours trained on the project itself; mIoU against distance from the nearest keyframe.
speed: frames/s end to end (both passes, reading and writing the store) and peak RSS of a
`sonolabel propagate` process, for 1, 3 and 7 classes and several video lengths; every run is a
fresh process on an otherwise idle machine. Results go to benchmarks/results/.
"""

from __future__ import annotations

import argparse
import json
import platform
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

RESULTS = Path(__file__).parent / "results"
EVERY = 200
BINS = [(1, 25), (26, 50), (51, 75), (76, 100)]


def miou(a: np.ndarray, b: np.ndarray, n: int = 8) -> float:
    ious = [np.logical_and(a == c, b == c).sum() / np.logical_or(a == c, b == c).sum() for c in range(n) if np.logical_or(a == c, b == c).any()]
    return float(np.mean(ious))


def render(seed: int, n: int):
    from sonolabel.phantom import make_sequence
    from sonolabel.phantom.render import PhantomRenderer

    r = PhantomRenderer(make_sequence(seed, 1, n))
    for t in range(n):
        yield r.render(t)


def build_project(path: Path, frames: np.ndarray, labels: np.ndarray, palette=None, every: int = EVERY):
    from sonolabel.store import Project

    p = Project.create(path, palette)
    with p.staged_video("v", len(frames), *frames.shape[1:], {"subject": "phantom", "fps": 20.0}) as v:
        for i in range(0, len(frames), 64):
            v.frames[i : i + 64] = frames[i : i + 64]
    v = p.video("v")
    for k in range(0, len(frames), every):
        v.save_annotation(k, labels[k])
    return p, v


def flow_chain(frames: np.ndarray, labels: np.ndarray, keys: list[int]) -> np.ndarray:
    """Labels carried frame to frame by optical flow (ILK, 240x240) from the nearer keyframe."""
    from skimage.registration import optical_flow_ilk
    from skimage.transform import resize, warp

    small = np.stack([resize(f, (240, 240), anti_aliasing=True, preserve_range=True) for f in frames]).astype(np.float32)
    out = labels.copy()
    rows, cols = np.meshgrid(np.arange(240), np.arange(240), indexing="ij")

    def carry(lab, src, dst):
        v, u = optical_flow_ilk(small[dst], small[src], radius=7)
        return warp(lab, np.array([rows + v, cols + u]), order=0, mode="edge", preserve_range=True).astype(np.uint8)

    for left, right in zip(keys[:-1], keys[1:]):
        mid = (left + right) // 2
        lab = resize(labels[left], (240, 240), order=0, preserve_range=True, anti_aliasing=False).astype(np.uint8)
        for t in range(left + 1, mid + 1):
            lab = carry(lab, t - 1, t)
            out[t] = resize(lab, labels.shape[1:], order=0, preserve_range=True, anti_aliasing=False)
        lab = resize(labels[right], (240, 240), order=0, preserve_range=True, anti_aliasing=False).astype(np.uint8)
        for t in range(right - 1, mid, -1):
            lab = carry(lab, t + 1, t)
            out[t] = resize(lab, labels.shape[1:], order=0, preserve_range=True, anti_aliasing=False)
    return out


def summarise(pred: np.ndarray, labels: np.ndarray, keys: list[int]) -> dict:
    dist = np.array([min(abs(t - k) for k in keys) for t in range(len(labels))])
    scores = np.array([miou(pred[t], labels[t]) for t in range(len(labels))])
    m = dist > 0
    return {
        "mean": float(scores[m].mean()),
        "worst": float(scores[m].min()),
        "by_distance": {f"{a}-{b}": float(scores[(dist >= a) & (dist <= b)].mean()) for a, b in BINS},
    }


def quality(args) -> None:
    import torch

    from sonolabel.propagation import PropagationConfig, propagate_video
    from sonolabel.propagation.weights import load_engine
    from sonolabel.propagation.train import TrainConfig, train_propagation

    torch.set_num_threads(2)
    rows = []
    for seed in args.seeds:
        out = list(render(seed, args.frames))
        frames, labels = np.stack([o[0] for o in out]), np.stack([o[1] for o in out])
        keys = list(range(0, args.frames, EVERY))
        res = {"seed": seed}
        res["copy"] = summarise(np.stack([labels[min(keys, key=lambda k: abs(k - t))] for t in range(args.frames)]), labels, keys)
        if not args.skip_flow:
            t0 = time.perf_counter()
            res["optical_flow"] = summarise(flow_chain(frames, labels, keys), labels, keys)
            res["optical_flow"]["fps"] = args.frames / (time.perf_counter() - t0)
        with tempfile.TemporaryDirectory() as tmp:
            p, v = build_project(Path(tmp) / "p.zarr", frames, labels)
            t0 = time.perf_counter()
            propagate_video(v, PropagationConfig(mode="free", device="cpu"))
            res["ours_free"] = summarise(np.stack([v.labels(t) for t in range(args.frames)]), labels, keys)
            res["ours_free"]["fps"] = (args.frames - len(keys)) / (time.perf_counter() - t0)
            if args.train_minutes > 0:
                t0 = time.perf_counter()
                train_propagation(p, TrainConfig(minutes=args.train_minutes), log=lambda s: None)
                res["train_minutes"] = (time.perf_counter() - t0) / 60
                engine, model_id = load_engine(p, PropagationConfig(mode="learned", device="cpu"))
                t0 = time.perf_counter()
                propagate_video(v, engine.config, engine=engine, model_id=model_id)
                res["ours_trained"] = summarise(np.stack([v.labels(t) for t in range(args.frames)]), labels, keys)
                res["ours_trained"]["fps"] = (args.frames - len(keys)) / (time.perf_counter() - t0)
            p.close()
        rows.append(res)
        print(json.dumps(res), flush=True)
    methods = [m for m in ("copy", "optical_flow", "ours_free", "ours_trained") if m in rows[0]]
    table = {
        m: {
            "mean": float(np.mean([r[m]["mean"] for r in rows])),
            "worst": float(np.min([r[m]["worst"] for r in rows])),
            "by_distance": {b: float(np.mean([r[m]["by_distance"][b] for r in rows])) for b in rows[0][m]["by_distance"]},
        }
        for m in methods
    }
    doc = {
        "frames": args.frames,
        "keyframe_every": EVERY,
        "seeds": args.seeds,
        "methods": table,
        "runs": rows,
        "machine": platform.processor() or platform.machine(),
    }
    (RESULTS / "propagation_quality.json").write_text(json.dumps(doc, indent=1))
    print(f"{'method':14s} {'mean':>6s} {'worst':>6s}  " + "  ".join(f"{b:>7s}" for b in table[methods[0]]["by_distance"]))
    for m, t in table.items():
        print(f"{m:14s} {t['mean']:6.3f} {t['worst']:6.3f}  " + "  ".join(f"{v:7.3f}" for v in t["by_distance"].values()))


CLASS_SETS = {1: [1], 3: [1, 2, 3], 7: [1, 2, 3, 4, 5, 6, 7]}


def _build_speed_project(path: Path, size: int, classes: int, frames: int, device: str = "cpu", learned: bool = False) -> None:
    import torch
    import torch.nn.functional as F

    from sonolabel.palette import FOREARM, Palette

    out = list(render(0, 400))
    imgs = np.stack([o[0] for o in out])
    labs = np.stack([o[1] for o in out])
    if size != 480:
        imgs = F.interpolate(torch.from_numpy(imgs)[:, None].float(), size=(size, size), mode="area")[:, 0].round().byte().numpy()
        labs = labs[:, :: 480 // size, :: 480 // size]
    keep = CLASS_SETS[classes]
    lut = np.zeros(256, np.uint8)
    lut[keep] = np.arange(1, len(keep) + 1)
    labs = lut[labs]
    palette = Palette(("background", *[FOREARM.names[c] for c in keep]), ((0, 0, 0), *[FOREARM.colors[c] for c in keep]))
    cycle = np.concatenate([np.arange(400), np.arange(398, 0, -1)])  # ping-pong so motion stays continuous
    order = cycle[np.arange(frames) % len(cycle)]
    p, _ = build_project(path, imgs[order], labs[order], palette)
    if learned:  # speed does not depend on what the weights learned: a few steps make a valid file
        from sonolabel.propagation.train import TrainConfig, train_propagation

        train_propagation(p, TrainConfig(minutes=0.05, device=device), log=lambda s: None)
    p.close()


def speed(args) -> None:
    rows = []
    runs = [(s, 7, n, m) for m in args.modes for s in args.sizes for n in args.lengths if not (s == 480 and n > 2000)]
    if args.classes:
        runs += [(240, c, 2000, "free") for c in (1, 3)]
    for size, classes, frames, mode in runs:
        with tempfile.TemporaryDirectory() as tmp:
            proj = Path(tmp) / "p.zarr"
            build = [sys.executable, __file__, "_build", str(proj), str(size), str(classes), str(frames), "--device", args.device]
            subprocess.run(build + (["--learned"] if mode == "learned" else []), check=True)
            code = (
                "import resource, sys, time, torch; torch.set_num_threads(2)\n"
                "from sonolabel.store import Project\nfrom sonolabel.pipeline import run_propagation\n"
                "p = Project.open(sys.argv[1], 'a'); t = time.perf_counter()\n"
                "r = run_propagation(p, device=sys.argv[2], mode=sys.argv[3], progress=False)[0]\n"
                "print(r.frames_written / (time.perf_counter() - t), resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024)\n"
            )
            res = subprocess.run([sys.executable, "-c", code, str(proj), args.device, mode], check=True, capture_output=True, text=True)
            fps, rss = map(float, res.stdout.split())
        rows.append({"size": size, "classes": classes, "frames": frames, "mode": mode, "device": args.device, "fps": fps, "peak_rss_mb": rss})
        print(json.dumps(rows[-1]), flush=True)
    doc = {
        "rows": rows,
        "machine": f"{platform.processor() or platform.machine()}, 2 threads" + ("" if args.device == "cpu" else f", {_gpu_name()}"),
        "python_peak_rss_note": "peak RSS of the whole propagate process (Python, torch and the store included)",
    }
    name = "propagation_speed.json" if args.device == "cpu" else f"propagation_speed_{args.device}.json"
    if (RESULTS / name).is_file():  # rows of runs not repeated this time stay
        ran = {(r["size"], r["classes"], r["frames"], r["mode"]) for r in rows}
        kept = [r for r in json.loads((RESULTS / name).read_text())["rows"] if (r["size"], r["classes"], r["frames"], r.get("mode", "free")) not in ran]
        doc["rows"] = kept + rows
    (RESULTS / name).write_text(json.dumps(doc, indent=1))
    print(f"{'size':>5s} {'classes':>7s} {'frames':>6s} {'mode':>7s} {'frames/s':>8s} {'peak RSS MB':>11s}")
    for r in rows:
        print(f"{r['size']:5d} {r['classes']:7d} {r['frames']:6d} {r['mode']:>7s} {r['fps']:8.1f} {r['peak_rss_mb']:11.0f}")


def _gpu_name() -> str:
    import torch

    return torch.cuda.get_device_name() if torch.cuda.is_available() else "no GPU"


def main() -> None:
    ap = argparse.ArgumentParser()
    sub = ap.add_subparsers(dest="cmd", required=True)
    q = sub.add_parser("quality")
    q.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    q.add_argument("--frames", type=int, default=1001)
    q.add_argument("--train-minutes", type=float, default=10.0)
    q.add_argument("--skip-flow", action="store_true")
    s = sub.add_parser("speed")
    s.add_argument("--sizes", type=int, nargs="+", default=[240, 480])
    s.add_argument("--lengths", type=int, nargs="+", default=[500, 2000, 8000])
    s.add_argument("--modes", nargs="+", choices=("free", "learned"), default=["free"])
    s.add_argument("--device", default="cpu", choices=("cpu", "cuda"))
    s.add_argument("--no-classes", dest="classes", action="store_false", help="skip the 1- and 3-class runs")
    b = sub.add_parser("_build")
    b.add_argument("path")
    b.add_argument("size", type=int)
    b.add_argument("classes", type=int)
    b.add_argument("frames", type=int)
    b.add_argument("--device", default="cpu")
    b.add_argument("--learned", action="store_true")
    args = ap.parse_args()
    RESULTS.mkdir(exist_ok=True)
    if args.cmd == "quality":
        quality(args)
    elif args.cmd == "speed":
        speed(args)
    else:
        _build_speed_project(Path(args.path), args.size, args.classes, args.frames, args.device, args.learned)


if __name__ == "__main__":
    main()
