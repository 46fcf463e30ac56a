"""What a reviewer gets from `sonolabel drift`: flags scored against the phantom's truth.

    python benchmarks/drift_scoring.py [--seeds 11 12 13] [--frames 600] [--every 100]

Two sets, each run with the label-only signals (``consistency=False``) and with every signal:

(a) **realistic injection.** Phantom videos (seeds other than the tests'), keyframes every ``--every``
    frames from the truth, propagated for real; every other stretch running away from a keyframe is
    then damaged, growing with the distance from the keyframe to a size drawn per stretch: a slide
    of 4-16 px, a bleed of 4-12 px, a shrink of 20-60 % of the area, or a class swapped with its
    neighbour. Scored per stretch (a flag with more than half of its frames inside it) and per frame.
(b) **genuine failures.** Nothing injected: phantom videos propagated for real, some of which
    propagation gets wrong in places: a probe jump of 30-45 px between two frames, fast speckle
    decorrelation (out-of-plane motion), a long gap between keyframes (400 frames), and a probe swept
    over the forearm (±90 px, rocking up to 30°, a tendon darting 60 px; ``phantom.variants``) with
    keyframes every 400 frames on two seeds, and on every seed a muscle (FCR, FCU or FPL) leaving the
    imaging plane (``phantom.variants.leave_plane``: it shrinks to nothing over 20-40 frames, stays
    out 40-120 and comes back, so keyframes disagree on whether it is there).

Per frame, an *error* is a frame whose true mIoU is below 0.85 or whose IoU on any class is below
0.7; a frame is *flagged* when any drift flag covers it. Reported: recall of error frames, precision
of flagged frames, and frames a reviewer looks at per error frame found, for every signal set and for
each signal alone (its own flags). Results go to benchmarks/results/drift_scoring.json; ``--sets
genuine`` reruns only (b) and keeps (a)'s results.

``--model-epochs N`` adds a third signal set, ``model``: the label-only signals plus a U-Net
(resnet18, 128 px, N epochs on two other phantom videos' true labels, as a project would train one
on its reviewed videos) predicted over each video (``sonolabel drift --model``). ``--signals`` picks
the sets to run (default: label_only and all).
"""

from __future__ import annotations

import argparse
import json
import platform
import shutil
import tempfile
import time
from pathlib import Path

import numpy as np

RESULTS = Path(__file__).parent / "results"
SIZES = {"slide": (4, 16), "bleed": (4, 12), "shrink": (0.2, 0.6), "swap": (1, 1)}


GENUINE = ("jump", "decorrelation", "gap", "sweep", "leave_plane")


def render(seed: int, n: int, failure: str | None):
    """A phantom video and its truth; a genuine failure's draws come from its own generator (seed and kind),
    so a video is the same whichever sets run before it."""
    rng = np.random.default_rng([seed, GENUINE.index(failure)] if failure else seed)
    from sonolabel.phantom import make_sequence
    from sonolabel.phantom.render import MARGIN, PhantomRenderer
    from sonolabel.phantom.variants import WIDE_MARGIN, fast_structure, leave_plane, sweep

    seq = make_sequence(seed, 1, n)
    margin = MARGIN
    if failure == "jump":  # the probe slips between two frames
        t = int(rng.integers(n // 4, 3 * n // 4))
        seq.drift[t:, 0] += rng.choice([-1, 1]) * rng.uniform(30, 45)
    elif failure == "decorrelation":  # out-of-plane motion: the speckle changes fast over a stretch
        t = int(rng.integers(n // 4, n // 2))
        seq.phase[t:] += np.clip(np.arange(n - t) / 30, 0, 1) * np.pi / 2
    elif failure == "leave_plane":  # a muscle ends: its cross-section shrinks to nothing and comes back
        leave_plane(seq, rng, str(rng.choice(["FCR", "FCU", "FPL"])))
    elif failure == "sweep":  # the probe swept and rocked over the forearm, a tendon darting
        own = np.random.default_rng(seed)
        sweep(seq, own, degrees=30.0)
        fast_structure(seq, own)
        margin = WIDE_MARGIN
    r = PhantomRenderer(seq, margin)
    out = [r.render(t) for t in range(n)]
    return np.stack([o[0] for o in out]), np.stack([o[1] for o in out])


def frame_errors(pred: np.ndarray, truth: np.ndarray, n: int = 8) -> np.ndarray:
    from sonolabel.propagation.loko import class_ious

    out = np.zeros(len(pred), bool)
    for t in range(len(pred)):
        iou = class_ious(pred[t], truth[t], n)
        out[t] = np.nanmean(iou) < 0.85 or np.nanmin(iou) < 0.7
    return out


SIGNAL_SETS = {"label_only": False, "all": True, "model": False}  # name -> consistency reads on


def inside(flags: list[dict], row: dict) -> list[dict]:
    """The flags with more than half of their frames inside the stretch ``row``."""
    return [f for f in flags if 2 * (min(row["stop"], f["stop"]) - max(row["first"], f["start"])) > f["stop"] - f["start"]]


def train_model(work: Path, frames: int, epochs: int) -> Path:
    """A U-Net trained on two other phantom videos' true labels (seeds 21-22), as a project trains one on its reviewed videos."""
    from sonolabel.export import ExportConfig, export_dataset
    from sonolabel.phantom import generate_phantom, phantom_project
    from sonolabel.unet.train import UNetConfig, train_unet

    if (work / "unet" / "best.pt").is_file():
        return work / "unet" / "best.pt"
    generate_phantom(work / "ph", subjects=2, frames=frames, seed=21)
    with phantom_project(work / "ph", work / "p.zarr") as p:
        export_dataset(p, work / "ds", ExportConfig(size=128))
    t = time.perf_counter()
    train_unet(work / "ds", work / "unet", UNetConfig(encoder="resnet18", epochs=epochs, lr=1e-3, workers=0, seed=0), progress=False)
    print(f"U-Net: {epochs} epochs in {time.perf_counter() - t:.0f} s", flush=True)
    return work / "unet" / "best.pt"


def localised(flag: dict, labels: np.ndarray, reference: np.ndarray, names: list[str]) -> tuple[bool, bool]:
    """Whether ``flag`` names a class the damage is about (one that at least a fifth of the pixels where
    ``labels`` and ``reference`` differ over its frames left or took) and whether its box holds at least half
    of the differing pixels that involve that class."""
    a, b = labels[flag["start"] : flag["stop"]], reference[flag["start"] : flag["stop"]]
    wrong = a != b
    if flag.get("class") not in names or not wrong.any():
        return False, False
    c = names.index(flag["class"])
    mine = wrong & ((a == c) | (b == c))
    named = mine.sum() >= 0.2 * wrong.sum()
    box = flag.get("box")
    boxed = bool(box) and mine[:, box[0] : box[2], box[1] : box[3]].sum() >= 0.5 * max(mine.sum(), 1)
    return bool(named), bool(named and boxed)


def covered(flags: list[dict], n: int) -> np.ndarray:
    out = np.zeros(n, bool)
    for f in flags:
        out[f["start"] : f["stop"]] = True
    return out


def score(bad: np.ndarray, flagged: np.ndarray) -> dict:
    hit = int((bad & flagged).sum())
    return {
        "error_frames": int(bad.sum()),
        "flagged_frames": int(flagged.sum()),
        "recall": hit / max(int(bad.sum()), 1),
        "precision": hit / max(int(flagged.sum()), 1),
        "frames_per_error_found": int(flagged.sum()) / hit if hit else None,
    }


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--seeds", type=int, nargs="+", default=[11, 12, 13])
    ap.add_argument("--frames", type=int, default=600)
    ap.add_argument("--every", type=int, default=100)
    ap.add_argument("--sweep-frames", type=int, default=801, help="frames of the swept videos (keyframes every 400)")
    ap.add_argument("--sets", nargs="+", default=["injected", "genuine"], choices=["injected", "genuine"])
    ap.add_argument("--signals", nargs="+", default=["label_only", "all"], choices=list(SIGNAL_SETS))
    ap.add_argument("--model-epochs", type=int, default=0, help="train a U-Net for the model set this many epochs (default: 3 when the set runs)")
    ap.add_argument("--work", help="keep the U-Net, every video's project (review CSVs, flags) and its truth.npy here; a U-Net there is reused")
    args = ap.parse_args()
    args.signals = sorted(set(args.signals), key=lambda s: s == "model")  # predicting leaves model columns in the store: the model set runs last

    from propagation import build_project
    from sonolabel.phantom.corrupt import REALISTIC, corrupt_stretch
    from sonolabel.propagation import propagate_video
    from sonolabel.review import DriftConfig, ReviewLog, run_drift, stretches
    from sonolabel.review.drift import OUTLIER_SIGNALS, TREND_SIGNALS

    SIGNALS = set(TREND_SIGNALS) | set(OUTLIER_SIGNALS) | {"consistency_px"}

    rng = np.random.default_rng(0)
    t0 = time.perf_counter()
    work = tempfile.TemporaryDirectory()
    root = Path(args.work or work.name)
    model = train_model(root, args.frames, args.model_epochs or 3) if "model" in args.signals else None
    per_signal: list[dict] = []
    genuine = [(args.seeds[0], "jump"), (args.seeds[1 % len(args.seeds)], "decorrelation"), (args.seeds[-1], "gap"), (0, "sweep"), (1, "sweep")]
    genuine += [(s, "leave_plane") for s in args.seeds]
    cases = ([(s, None) for s in args.seeds] if "injected" in args.sets else []) + (genuine if "genuine" in args.sets else [])
    stretch_rows, frame_rows, seconds = [], [], {"propagate": 0.0}
    for seed, failure in cases:
        n, e = (args.sweep_frames, 400) if failure == "sweep" else (args.frames, args.every)
        frames, truth = render(seed, n, failure)
        with tempfile.TemporaryDirectory() as tmp:
            tmp = root / f"{failure or 'injected'}-{seed}" if args.work else Path(tmp)
            if tmp.exists():
                shutil.rmtree(tmp)
            keys = sorted({0, e, min(n - 1, 5 * e), n - 1}) if failure == "gap" else list(range(0, n, e))  # gap: a 4-spacing gap
            p, v = build_project(Path(tmp) / "p.zarr", frames, truth, every=n + 1)
            for k in keys:
                v.save_annotation(k, truth[k])
            t = time.perf_counter()
            propagate_video(v)
            seconds["propagate"] += time.perf_counter() - t
            labels = np.asarray(v.propagated[:])
            propagated = np.where(np.isin(np.arange(n), keys)[:, None, None], truth, labels)  # before any damage
            classes = list(p.palette.names)
            rows = []
            if failure is None:
                for i, (key, first, stop) in enumerate(stretches(n, keys)):
                    row = {"seed": seed, "first": first, "stop": stop, "kind": "clean"}
                    if i % 2 == 0:
                        kind = REALISTIC[(len(stretch_rows) // 2) % len(REALISTIC)]
                        lo, hi = SIZES[kind]
                        size = float(rng.uniform(lo, hi))
                        cls = int(rng.integers(1, 8))
                        labels = corrupt_stretch(labels, key, first, stop, kind, cls, pixels=size, fraction=size)
                        row.update(kind=kind, size=round(size, 2), cls=cls)
                    rows.append(row)
                    stretch_rows.append(row)
                v.save_propagated(0, labels)
            final = np.where(np.isin(np.arange(n), keys)[:, None, None], truth, labels)
            if args.work:  # the truth beside the project, to score other rules on the kept signals
                np.save(Path(tmp) / "truth.npy", truth)
            bad = frame_errors(final, truth)
            for name in args.signals:
                t = time.perf_counter()
                run_drift(p, [v.id], model=model if name == "model" else None, cfg=DriftConfig(consistency=SIGNAL_SETS[name], device="cpu"))
                seconds[f"drift_{name}"] = seconds.get(f"drift_{name}", 0.0) + time.perf_counter() - t
                flags = ReviewLog(p).flags(v.id)
                flagged = covered(flags, n)
                case = "injected" if failure is None else failure
                frame_rows.append({"seed": seed, "set": case, "signals": name, **score(bad, flagged)})
                for row in rows:
                    row[f"flagged_{name}"] = bool(inside(flags, row))
                    if row["kind"] != "clean":  # does the flag point at the damaged structure and place?
                        found = [localised(f, final, propagated, classes) for f in inside(flags, row)]
                        row[f"named_{name}"], row[f"boxed_{name}"] = (any(x[0] for x in found), any(x[1] for x in found)) if found else (None, None)
                if failure is not None:  # flags that cover an error frame: named and boxed against the truth
                    hits = [localised(f, final, truth, classes) for f in flags if bad[f["start"] : f["stop"]].any()]
                    frame_rows[-1]["flags_on_errors"] = len(hits)
                    frame_rows[-1]["named"] = sum(h[0] for h in hits)
                    frame_rows[-1]["boxed"] = sum(h[1] for h in hits)
                for signal in sorted(SIGNALS | {f["signal"] for f in flags}):  # every signal, flagging or not
                    own = [f for f in flags if f["signal"] == signal]
                    per_signal.append(
                        {"seed": seed, "set": case, "signals": name, "signal": signal, **score(bad, covered(own, n))}
                        | {"stretches": [(r["kind"], bool(inside(own, r))) for r in rows]}
                    )
                print(json.dumps(frame_rows[-1]), flush=True)
            p.close()

    def stretch_table(name: str) -> dict:
        inj = [r for r in stretch_rows if r["kind"] != "clean"]
        clean = [r for r in stretch_rows if r["kind"] == "clean"]
        return {
            "recall": float(np.mean([r[f"flagged_{name}"] for r in inj])),
            "false_flag_rate": float(np.mean([r[f"flagged_{name}"] for r in clean])),
            "recall_by_kind": {k: float(np.mean([r[f"flagged_{name}"] for r in inj if r["kind"] == k])) for k in REALISTIC},
            # of the damaged stretches flagged: a flag inside names a damaged class / also boxes the damage
            "named": float(np.mean([r[f"named_{name}"] for r in inj if r.get(f"named_{name}") is not None] or [np.nan])),
            "boxed": float(np.mean([r[f"boxed_{name}"] for r in inj if r.get(f"boxed_{name}") is not None] or [np.nan])),
        }

    def pooled(set_names: set[str], name: str) -> dict:
        rows = [r for r in frame_rows if r["set"] in set_names and r["signals"] == name]
        bad = sum(r["error_frames"] for r in rows)
        flagged = sum(r["flagged_frames"] for r in rows)
        hit = sum(round(r["recall"] * r["error_frames"]) for r in rows)
        return {
            "error_frames": bad,
            "flagged_frames": flagged,
            "recall": hit / max(bad, 1),
            "precision": hit / max(flagged, 1),
            "frames_per_error_found": flagged / hit if hit else None,
            # flags that cover an error frame, and how many of them name a wrong class / also box it
            "flags_on_errors": sum(r.get("flags_on_errors", 0) for r in rows),
            "named": sum(r.get("named", 0) for r in rows),
            "boxed": sum(r.get("boxed", 0) for r in rows),
        }

    path = RESULTS / "drift_scoring.json"
    doc = json.loads(path.read_text()) if path.exists() else {}
    doc.update({"machine": f"{platform.machine()}, CPU only", "seeds": args.seeds, "frames": args.frames, "keyframe_every": args.every})
    names = args.signals
    genuine_sets = {failure for _, failure in genuine}
    if "injected" in args.sets:
        doc.setdefault("injected_stretches", {}).update({name: stretch_table(name) for name in names})
        doc.setdefault("frames_injected", {}).update({name: pooled({"injected"}, name) for name in names})
        old = {(r["seed"], r["first"]): r for r in doc.get("stretches", [])}
        doc["stretches"] = [{**old.get((r["seed"], r["first"]), {}), **r} for r in stretch_rows]  # flags of signal sets not rerun are kept
    if "genuine" in args.sets:
        doc["sweep_frames"] = args.sweep_frames
        doc.setdefault("frames_genuine", {}).update({name: pooled(genuine_sets, name) for name in names})
        by_set = doc.setdefault("frames_genuine_by_set", {})
        for f in genuine_sets:
            by_set.setdefault(f, {}).update({name: pooled({f}, name) for name in names})
    rerun = lambda r: ("injected" if r["set"] == "injected" else "genuine") in args.sets and r["signals"] in names  # noqa: E731
    doc["per_video"] = [r for r in doc.get("per_video", []) if not rerun(r)] + frame_rows
    doc["per_signal"] = [r for r in doc.get("per_signal", []) if not rerun(r)] + per_signal
    doc["signal_alone"] = signal_alone(doc["per_signal"])
    doc.setdefault("seconds", {}).update({k: round(v, 1) for k, v in seconds.items()})  # propagate: this run's
    doc["total_seconds"] = round(time.perf_counter() - t0, 1)
    RESULTS.mkdir(exist_ok=True)
    path.write_text(json.dumps(doc, indent=1))
    print(json.dumps({k: doc.get(k) for k in ("injected_stretches", "frames_injected", "frames_genuine", "signal_alone", "seconds")}, indent=1))
    work.cleanup()


def signal_alone(rows: list[dict]) -> dict:
    """Per signal set and signal, pooled over videos: injected stretches flagged (damaged, clean) and the
    error frames its own flags cover, with their precision (injected and genuine sets apart)."""
    out: dict = {}
    for r in rows:
        kind = "injected" if r["set"] == "injected" else "genuine"
        empty = {"error_frames": 0, "flagged_frames": 0, "hit": 0, "damaged": [], "clean": []}
        d = out.setdefault(r["signals"], {}).setdefault(r["signal"], {}).setdefault(kind, empty)
        d["error_frames"] += r["error_frames"]
        d["flagged_frames"] += r["flagged_frames"]
        d["hit"] += round(r["recall"] * r["error_frames"])
        for k, flagged in r["stretches"]:
            d["clean" if k == "clean" else "damaged"].append(flagged)
    for sets in out.values():
        for kinds in sets.values():
            for d in kinds.values():
                d["frame_recall"] = d["hit"] / max(d["error_frames"], 1)
                d["frame_precision"] = d["hit"] / max(d["flagged_frames"], 1)
                d["stretch_recall"] = float(np.mean(d.pop("damaged"))) if d["damaged"] else None
                d["clean_flagged"] = float(np.mean(d.pop("clean"))) if d["clean"] else None
    # a signal that never flagged in a set (or does not exist there, as the model's without a model) is left out
    return {name: {sig: kinds for sig, kinds in sigs.items() if any(d["flagged_frames"] for d in kinds.values())} for name, sigs in out.items()}


if __name__ == "__main__":
    main()
