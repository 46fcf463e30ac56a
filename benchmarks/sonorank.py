"""SonoRank on the phantom: held-out ranking AUC within a CPU training budget, and inference latency.

    python benchmarks/sonorank.py [--input labels|raw|both] [--subjects 6] [--frames 1200] [--work DIR]
    python benchmarks/sonorank.py --latency-only

In one run on this machine:
* data: ``--subjects`` phantom subjects of ``--frames`` frames (20 fps), imported, exported at 112x112;
* training: the small configuration (``--config small``), fold 0 of the leave-one-subject-out
  splits (test sub-01, validate on the last subject, train on the rest), stage 1 then stage 2;
  wall-clock minutes of each stage;
* the held-out subject's per-finger ranking AUC on informative pairs, and flexion scores;
* training throughput: pairs per second of single pairs against groups of 8 windows;
* latency: one forward pass of a pair of T=16 windows at 224x224 (the paper's network) on the
  CPU threads given, and of the small network; the incremental cost of one new frame when
  frame features are cached (what a real-time loop pays).
Target: mean held-out ranking AUC >= 0.9 with at most 30 CPU minutes of training.
Results: benchmarks/results/sonorank.json (quoted in docs/sonorank.md).
"""

from __future__ import annotations

import argparse
import json
import platform
import statistics
import tempfile
import time
from pathlib import Path

import torch

RESULTS = Path(__file__).parent / "results"


def latency(threads: int) -> dict:
    from sonolabel.rank.model import ArchConfig, SonoRank, count_parameters
    from sonolabel.rank.config import SMALL

    torch.set_num_threads(threads)
    out = {}
    for name, arch, size in (("paper", ArchConfig(), 224), ("small", ArchConfig(widths=SMALL["widths"], length=SMALL["length"]), SMALL["size"])):
        model = SonoRank(arch).eval()
        t = arch.length
        a, b = torch.rand(1, t, 1, size, size), torch.rand(1, t, 1, size, size)
        frame = torch.rand(1, 1, 1, size, size)
        cached = torch.rand(1, t, arch.embed)
        pair, incremental = [], []
        with torch.inference_mode():
            model(a, b)
            for _ in range(5):
                t0 = time.perf_counter()
                model(a, b)
                pair.append(time.perf_counter() - t0)
                t0 = time.perf_counter()
                feats = torch.cat([cached[:, 1:], model.embed_frames(frame)], 1)  # one new frame, the rest cached
                model.classify(model.embed_sequence(feats), model.embed_sequence(cached))
                incremental.append(time.perf_counter() - t0)
        out[name] = {
            "parameters": count_parameters(model),
            "size": size,
            "length": t,
            "pair_forward_ms": 1000 * statistics.median(pair),
            "new_frame_ms": 1000 * statistics.median(incremental),
        }
    return out


def pair_throughput(threads: int, steps: int = 6) -> dict:
    """Training pairs per second of the small network (label input), single pairs against groups of 8:
    both batches encode 16 windows; the pairs differ (8 against 2 x 28)."""
    from sonolabel.rank.data import group_pairs
    from sonolabel.rank.model import ArchConfig, SonoRank
    from sonolabel.rank.objectives import pair_targets, ranking_loss
    from sonolabel.rank.config import SMALL

    torch.set_num_threads(threads)
    torch.manual_seed(0)
    out = {}
    for name, groups, k in (("pairs", 8, 2), ("groups_of_8", 2, 8)):
        model = SonoRank(ArchConfig(in_channels=8, widths=SMALL["widths"], length=SMALL["length"], dropout=0.0))
        opt = torch.optim.Adam(model.parameters(), 1e-3)
        a, b = group_pairs(k)
        x = torch.rand(groups, k, SMALL["length"], 8, SMALL["size"], SMALL["size"])
        travel = torch.rand(groups, k, 5) * 60
        y, m = pair_targets(travel[:, a].flatten(0, 1), travel[:, b].flatten(0, 1))
        times = []
        for _ in range(steps + 1):
            t0 = time.perf_counter()
            loss = ranking_loss(model.rank_groups(x, a, b), y, m)
            opt.zero_grad()
            loss.backward()
            opt.step()
            times.append(time.perf_counter() - t0)
        step = statistics.median(times[1:])
        out[name] = {"windows_per_step": groups * k, "pairs_per_step": groups * len(a), "step_ms": 1000 * step, "pairs_per_second": groups * len(a) / step}
    out["ratio"] = out["groups_of_8"]["pairs_per_second"] / out["pairs"]["pairs_per_second"]
    return out


def build_dataset(work: Path, subjects: int, frames: int) -> Path:
    from sonolabel.export import ExportConfig, export_dataset
    from sonolabel.phantom import generate_phantom, phantom_project

    ds = work / "ds"
    if ds.exists():
        return ds
    generate_phantom(work / "ph", subjects=subjects, frames=frames, seed=11, progress=True)
    with phantom_project(work / "ph", work / "p.zarr") as p:
        export_dataset(p, ds, ExportConfig(size=112))
    return ds


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--subjects", type=int, default=6)
    ap.add_argument("--frames", type=int, default=1200)
    ap.add_argument("--work", help="folder for the phantom, project, dataset and run (kept; reused when present)")
    ap.add_argument("--threads", type=int, default=torch.get_num_threads())
    ap.add_argument("--latency-only", action="store_true")
    ap.add_argument("--input", default="labels", choices=("raw", "labels", "both"))
    ap.add_argument("--set", action="append", default=[], help="extra RankConfig settings key=value")
    args = ap.parse_args()

    result: dict = {"machine": {"cpu_threads": args.threads, "platform": platform.platform(), "torch": torch.__version__, "cuda": torch.cuda.is_available()}}
    result["latency_cpu"] = latency(args.threads)
    result["training_throughput_cpu"] = pair_throughput(args.threads)
    print(json.dumps({k: result[k] for k in ("latency_cpu", "training_throughput_cpu")}, indent=1))
    if not args.latency_only:
        from sonolabel.rank.config import PRESETS, RankConfig
        from sonolabel.rank.train import train_rank
        from sonolabel.training.config import config_from

        work = Path(args.work or tempfile.mkdtemp(prefix="sonorank-bench-"))
        t0 = time.perf_counter()
        ds = build_dataset(work, args.subjects, args.frames)
        setup = time.perf_counter() - t0
        cfg = config_from(RankConfig, PRESETS["small"], sets=["fold=0", "workers=1", f"input={args.input}", *args.set])
        run = work / f"run-{args.input}"
        res = train_rank(ds, run, cfg)
        import pandas as pd

        log = pd.read_csv(run / "log.csv")
        minutes = {stage: float(part["seconds"].sum() / 60) for stage, part in log.groupby("stage")}
        test = res.metrics["test"]
        result["training"] = {
            "subjects": args.subjects,
            "frames_per_subject": args.frames,
            "setup_seconds": setup,
            "split": res.metrics["subjects"],
            "config": json.loads(json.dumps(cfg.__dict__)),
            "minutes": minutes,
            "total_minutes": sum(minutes.values()),
            "parameters": res.parameters,
            "test_auc": test["rank"]["auc"],
            "test_mean_auc": test["rank"]["mean_auc"],
            "test_informative_pairs": test["rank"]["informative"],
            "test_flex_macro": test["flex"]["macro"],
            "test_flex_calibrated": test["flex"]["calibrated"],
            "test_flex_f1": {f: v["f1"] for f, v in test["flex"]["fingers"].items()},
            "test_flex_calibrated_f1": {f: v["calibrated_f1"] for f, v in test["flex"]["fingers"].items()},
            "test_flex_auc": {f: v["auc"] for f, v in test["flex"]["fingers"].items()},
            "val_flex_macro": res.metrics["val"]["flex"]["macro"],
            "val_flex_calibrated": res.metrics["val"]["flex"]["calibrated"],
            "val_mean_auc": res.metrics["val"]["rank"]["mean_auc"],
            "target": {"mean_auc": 0.9, "minutes": 30},
        }
        print(json.dumps(result["training"], indent=1))
    RESULTS.mkdir(exist_ok=True)
    path = RESULTS / "sonorank.json"
    if args.latency_only and path.exists():  # keep the last training measurement
        result = {**json.loads(path.read_text()), **result}
    path.write_text(json.dumps(result, indent=1))


if __name__ == "__main__":
    main()
