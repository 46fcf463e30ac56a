"""What the phantom lets any model know about the flexed finger of a subject it never saw.

    python benchmarks/sonorank_ceiling.py [--subjects 5] [--frames 1200] [--scale training|session]

SonoRank's flexion targets (held-out macro F1 0.8 from labels, 0.6 from raw frames) are only
reachable if the input carries the answer in a form that transfers across subjects. This renders the
same phantom subjects as ``sonorank_loso.py`` (seed 11, one trial each) without writing video, and
scores linear probes (logistic regression per finger, standardised features, pos-weighted) under
leave-one-subject-out on the same windows (8 frames every 2nd, a window every 4 frames, majority
flex labels), from features taken with the truth the phantom knows:

* ``kinematics``: the finger angles themselves (what a perfect decoder of anything could reach);
* ``true labels, outline``: the true label maps at 480 px, each muscle cut into 8 strips across its
  rest-frame extent, each strip's area and mean top and bottom edge against the rest frame;
* ``true labels, as SonoRank reads them``: the true label maps at 112 px through ``rank/shapes.py``
  (4 strips): the labels input's features if propagation made no error;
* ``true motion, grid``: the tissue's true displacement (``PhantomRenderer.motion``) pooled on the
  8 x 8 grid of ``rank/flow.py``: the raw input's features if optical flow made no error;
* ``estimated flow, grid``: ``rank/flow.py``'s flow from the rendered frames at 112 px;
* ``true motion in class strips``: the true displacement and its divergence averaged within each
  muscle strip of the rest frame: motion read in the subject's own anatomy (raw and labels together);
* ``estimated flow in class strips``: the same from ``rank/flow.py``'s dense flow at 112 px (before
  its grid pooling) within the strips of the true rest-frame labels at 112 px: what the two inputs
  together could give with the flow the raw input has.

Window features are the mean over the window's frames, less the rest frame (the first), standardised
by the training subjects' statistics (``--scale training``) or by each subject's own over its session
(``--scale session``, as SonoRank's ``feature_norm`` session reads a new subject). ``within``
trains on the first half of one subject's windows and tests on the second half: what the features
say at all, before any transfer. Results: ``benchmarks/results/sonorank_ceiling.json`` (another
``--subjects``: ``sonorank_ceiling-<n>.json``; session scale: ``-session`` added).
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

from sonolabel.kinematics import FINGERS, flex_labels
from sonolabel.phantom.render import PhantomRenderer, make_sequence
from sonolabel.rank import flow
from sonolabel.rank.objectives import binary_scores, window_labels
from sonolabel.rank.shapes import EXTENT, column_profile, profile_change

RESULTS = Path(__file__).parent / "results" / "sonorank_ceiling.json"
MUSCLES = (1, 2, 3, 4, 5)  # FDS, FDP, FPL, FCR, FCU
STRIPS = 8
LENGTH, SUBSAMPLE, STEP = 8, 2, 4  # the small configuration's windows


def strip_edges(rest: np.ndarray) -> list[np.ndarray]:
    """Per muscle, STRIPS + 1 column edges across its rest-frame extent (as rank/shapes.py cuts its strips)."""
    out = []
    for c in MUSCLES:
        mass = np.cumsum((rest == c).sum(0)) / max((rest == c).sum(), 1)
        out.append(np.linspace((mass < EXTENT[0]).sum(), (mass < EXTENT[1]).sum() + 1, STRIPS + 1))
    return out


def outline(labels: np.ndarray, edges: list[np.ndarray]) -> np.ndarray:
    """Each muscle strip's area and mean top and bottom edge (shares of the frame height)."""
    h, w = labels.shape
    x, out = np.arange(w), []
    for c, e in zip(MUSCLES, edges):
        m = labels == c
        has = m.any(0)
        top = np.where(has, m.argmax(0), np.nan)
        bottom = np.where(has, h - 1 - m[::-1].argmax(0), np.nan)
        for k in range(STRIPS):
            cols = (x >= e[k]) & (x < e[k + 1])
            seen = has[cols].any()
            out += [m[:, cols].sum() / h / h, np.nanmean(top[cols]) / h if seen else 0.0, np.nanmean(bottom[cols]) / h if seen else 0.0]
    return np.asarray(out, np.float32)


def motion_in_strips(motion: np.ndarray, rest: np.ndarray, edges: list[np.ndarray]) -> np.ndarray:
    """The true displacement (rows, columns) and its divergence, averaged within each muscle strip of the rest frame."""
    div = np.gradient(motion[0], axis=0) + np.gradient(motion[1], axis=1)
    x, out = np.arange(rest.shape[1])[None], []
    for c, e in zip(MUSCLES, edges):
        for k in range(STRIPS):
            m = (rest == c) & (x >= e[k]) & (x < e[k + 1])
            out += [motion[0][m].mean(), motion[1][m].mean(), 100 * div[m].mean()] if m.sum() >= 3 else [0.0, 0.0, 0.0]
    return np.asarray(out, np.float32)


def small(a: np.ndarray, mode: str) -> torch.Tensor:
    """A 480 px map at 112 px, as the exported dataset holds it."""
    return F.interpolate(torch.from_numpy(np.asarray(a, np.float32))[None, None], size=(112, 112), mode=mode)[0, 0]


def subject_features(subject_seed: int, frames: int) -> tuple[dict[str, np.ndarray], np.ndarray, list[np.ndarray]]:
    """Per-window features of every kind (W, D), flex labels (W, 5), and the window frames."""
    seq = make_sequence(subject_seed, 1, frames)
    renderer = PhantomRenderer(seq)
    per_frame: dict[str, list[np.ndarray]] = {k: [] for k in ("outline", "shapes", "motion", "flow", "strips", "flow_strips")}
    rest_img = rest_lab = edges = rest_profile = rest_small = small_edges = None
    for t in range(frames):
        img, lab = renderer.render(t)
        motion = renderer.motion(t)
        if t == 0:
            rest_img, rest_lab, edges = small(img / 255.0, "area").numpy(), lab, strip_edges(lab)
            rest_small = small(lab, "nearest").numpy().astype(np.uint8)
            small_edges = strip_edges(rest_small)
        onehot = F.one_hot(small(lab, "nearest").long(), 8).permute(2, 0, 1)
        profile = column_profile(onehot)
        rest_profile = profile if t == 0 else rest_profile
        per_frame["outline"].append(outline(lab, edges))
        per_frame["shapes"].append(profile_change(profile[None, None], rest_profile[None], 4)[0].numpy())
        pooled = F.adaptive_avg_pool2d(torch.from_numpy(motion)[None], flow.GRID)[0].numpy() * 112 / 480
        per_frame["motion"].append((pooled - np.median(pooled.reshape(2, -1), 1)[:, None, None]).ravel())
        field = flow.dense_flow(rest_img, small(img / 255.0, "area").numpy()).astype(np.float32)
        per_frame["flow"].append(F.adaptive_avg_pool2d(torch.from_numpy(field)[None], flow.GRID)[0].flatten().numpy())
        per_frame["flow_strips"].append(motion_in_strips(field, rest_small, small_edges))
        per_frame["strips"].append(motion_in_strips(motion, rest_lab, edges))
    kinds = {k: np.stack(v) - v[0] for k, v in per_frame.items()}
    kinds["kinematics"] = seq.kinematics / 100.0
    starts = np.arange(0, frames - (LENGTH - 1) * SUBSAMPLE, STEP)
    pos = starts[:, None] + np.arange(LENGTH) * SUBSAMPLE
    flexed = np.stack([window_labels(flex_labels(seq.kinematics)[p]) for p in pos])
    return {k: v[pos].mean(1) for k, v in kinds.items()}, flexed


def probe(train_x: np.ndarray, train_y: np.ndarray, test_x: np.ndarray, l2: float = 1e-2) -> np.ndarray:
    """P(flexed) (W, 5) of a logistic regression per finger fitted with L-BFGS on standardised features."""
    mu, sd = train_x.mean(0), train_x.std(0) + 1e-6
    x, y = torch.tensor((train_x - mu) / sd, dtype=torch.float32), torch.tensor(train_y, dtype=torch.float32)
    w, b = torch.zeros(x.shape[1], 5, requires_grad=True), torch.zeros(5, requires_grad=True)
    pos = y.mean(0).clamp_min(0.01)
    opt = torch.optim.LBFGS([w, b], max_iter=300, line_search_fn="strong_wolfe")

    def closure():
        opt.zero_grad()
        loss = F.binary_cross_entropy_with_logits(x @ w + b, y, pos_weight=(1 - pos) / pos) + l2 * (w**2).sum()
        loss.backward()
        return loss

    opt.step(closure)
    with torch.no_grad():
        return torch.sigmoid(torch.tensor((test_x - mu) / sd, dtype=torch.float32) @ w + b).numpy()


KINDS = {
    "kinematics": ("kinematics",),
    "true labels, outline (480 px, 8 strips)": ("outline",),
    "true labels, as SonoRank reads them (112 px, 4 strips)": ("shapes",),
    "true motion, 8 x 8 grid": ("motion",),
    "estimated flow (rank/flow.py), 8 x 8 grid": ("flow",),
    "true motion in class strips": ("strips",),
    "true labels outline + true motion in class strips": ("outline", "strips"),
    "estimated flow in class strips (112 px)": ("flow_strips",),
    "true labels outline + estimated flow in class strips": ("outline", "flow_strips"),
}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--subjects", type=int, default=5)
    ap.add_argument("--frames", type=int, default=1200)
    ap.add_argument("--scale", choices=("training", "session"), default="training", help="standardise features over the training subjects or per subject")
    args = ap.parse_args()
    torch.set_num_threads(2)
    started = time.perf_counter()
    data = []
    for s in range(args.subjects):
        data.append(subject_features(11 * 1000 + s, args.frames))
        print(f"subject {s + 1}: features in {time.perf_counter() - started:.0f} s", flush=True)
    rows = []
    for name, parts in KINDS.items():
        x = [np.concatenate([d[0][p] for p in parts], 1) for d in data]
        if args.scale == "session":
            x = [(v - v.mean(0)) / (v.std(0) + 1e-6) for v in x]
        y = [d[1] for d in data]
        held = []
        for test in range(len(data)):
            train = [i for i in range(len(data)) if i != test]
            p = probe(np.concatenate([x[i] for i in train]), np.concatenate([y[i] for i in train]), x[test])
            held.append(binary_scores(p >= 0.5, y[test])["f1"])
        within = []
        for i in range(len(data)):
            half = np.arange(len(x[i])) < len(x[i]) // 2
            within.append(np.nanmean(binary_scores(probe(x[i][half], y[i][half], x[i][~half]) >= 0.5, y[i][~half])["f1"]))
        held = np.asarray(held)
        macro = np.nanmean(held, 1)
        rows.append(
            {
                "features": name,
                "held_out_f1": float(macro.mean()),
                "held_out_f1_std": float(macro.std(ddof=1)),
                "per_finger": dict(zip(FINGERS, np.nanmean(held, 0).round(3).tolist())),
                "within_subject_f1": float(np.mean(within)),
            }
        )
        print(f"{name:58s} held-out {macro.mean():.3f} ± {macro.std(ddof=1):.3f}  within {np.mean(within):.3f}  {rows[-1]['per_finger']}", flush=True)
    name = "sonorank_ceiling" + ("" if args.subjects == ap.get_default("subjects") else f"-{args.subjects}") + ("-session" if args.scale == "session" else "")
    results = RESULTS.with_name(name + ".json")
    results.parent.mkdir(exist_ok=True)
    out = {"subjects": args.subjects, "frames": args.frames, "scale": args.scale, "seed": 11, "flow_radius": flow.RADIUS}
    out.update({"seconds": time.perf_counter() - started, "rows": rows})
    results.write_text(json.dumps(out, indent=1))
    print(f"{results} ({out['seconds']:.0f} s)")


if __name__ == "__main__":
    main()
