"""What each ``sonolabel`` subcommand does; the parser lives in :mod:`sonolabel.cli.main`."""

from __future__ import annotations

import json
import shutil
import sys
from pathlib import Path

from ..errors import InputError
from ..palette import load_palette


def _key_map(pairs: list[str]) -> dict[str, str]:
    out = {}
    for p in pairs:
        if "=" not in p:
            raise InputError(f"--key needs ROLE=PATH, got {p!r}")
        role, path = p.split("=", 1)
        out[role.strip()] = path.strip()
    return out


def phantom(args) -> int:
    from ..phantom import generate_phantom

    recs = generate_phantom(args.out, subjects=args.subjects, frames=args.frames, seed=args.seed, trials=args.trials, fps=args.fps, progress=True)
    print(f"wrote {len(recs)} recordings of {args.frames} frames to {args.out} (manifest.json lists them)")
    return 0


def import_(args) -> int:
    from ..pipeline import import_source, importing

    source = Path(args.source)
    if not source.exists():
        raise InputError("no such file or folder", source)
    if source.suffix.lower() == ".csv":
        return import_batch(args, source)
    if not args.subject:
        raise InputError("--subject is required when importing one recording", source)
    with importing(args.project, args.palette) as project:
        ids = import_source(
            project,
            source,
            args.subject,
            masks=args.masks,
            swap_rb=args.bgr,
            progress=True,
            trial=args.trial,
            task=args.task,
            crop=args.crop,
            fps=args.fps,
            kinematics=args.kinematics,
            h5_keys=_key_map(args.key),
            mm_per_pixel=args.mm_per_pixel,
            dedupe=args.dedupe,
        )
    for vid in ids:
        print(vid)
    return 0


def import_batch(args, manifest: Path) -> int:
    """``sonolabel import PROJECT list.csv``: every recording of the manifest, one dask task each."""
    from ..io.manifest import import_manifest
    from ..pipeline import project_for_import

    project, created = project_for_import(args.project, args.palette)
    with project:
        results = import_manifest(project, manifest, scheduler=args.scheduler, workers=args.workers)
        if created and not any(r.error is None for r in results):
            shutil.rmtree(args.project, ignore_errors=True)
    failed = [r for r in results if r.error]
    for r in results:
        print(r.video if r.error is None else f"failed: {r.error}", file=sys.stderr if r.error else sys.stdout)
    if failed:
        raise InputError(
            f"{len(failed)} of {len(results)} recordings failed (listed above); the others were imported", manifest, "fix those rows and import them again"
        )
    return 0


def info(args) -> int:
    from ..store import Project

    with Project.open(args.project) as project:
        if args.video:
            v = project.video(args.video)
            table = v.table()
            doc = {
                "video": v.id,
                "frames": v.n_frames,
                "height": v.height,
                "width": v.width,
                "keyframes": v.annotated_frames(),
                "attrs": v.attrs,
                "sources": table["source"].value_counts().to_dict(),
            }
            if args.json:
                print(json.dumps(doc, indent=1, default=str))
            else:
                for k, val in doc.items():
                    if k != "attrs":
                        print(f"{k:10s} {val}")
                for k, val in doc["attrs"].items():
                    print(f"  {k:18s} {val}")
            return 0
        rows = project.summary()
        if args.json:
            print(
                json.dumps(
                    {"project": str(project.path), "schema": project.meta["schema"], "palette": project.palette.to_dict(), "videos": rows},
                    indent=1,
                    default=str,
                )
            )
            return 0
        print(f"{project.path}  schema {project.meta['schema']}  {len(rows)} videos  classes: {', '.join(project.palette.names)}")
        if rows:
            import pandas as pd

            df = pd.DataFrame(rows)[
                ["video", "subject", "trial", "task", "frames", "width", "height", "fps", "mm_per_px", "keyframes", "propagated", "imported"]
            ]
            df["mm_per_px"] = [("-" if s is None else "x".join("?" if v is None else f"{v:.4g}" for v in s)) for s in df["mm_per_px"]]
            for col in ("propagated", "imported"):
                df[col] = (df[col] * 100).round(1).astype(str) + "%"
            print(df.to_string(index=False))
    return 0


def quantize(args) -> int:
    from ..mask_sequences import quantize_video
    from ..quantize import quantize_folder

    if Path(args.in_dir).is_file():
        reports = quantize_video(
            args.in_dir,
            args.out_dir,
            load_palette(args.palette),
            tolerance=args.tolerance,
            max_unknown_fraction=args.max_unknown_fraction,
            swap_rb=args.bgr,
            progress=True,
        )
    else:
        reports = quantize_folder(
            args.in_dir,
            args.out_dir,
            load_palette(args.palette),
            tolerance=args.tolerance,
            max_unknown_fraction=args.max_unknown_fraction,
            swap_rb=args.bgr,
            progress=True,
            workers=args.workers,
            scheduler=args.scheduler,
        )
    worst = max(reports, key=lambda r: r.unknown_fraction)
    n_unknown = sum(r.unknown_count > 0 for r in reports)
    print(f"quantized {len(reports)} masks into {args.out_dir}; {n_unknown} with unknown colours" + (f" (worst: {worst.summary()})" if n_unknown else ""))
    if any(r.probable_bgr for r in reports):
        print("warning: some masks match far better with red and blue swapped (probable BGR): rerun with --bgr", file=sys.stderr)
    return 0


def masks_export(args) -> int:
    from ..masks import export_masks
    from ..store import Project

    with Project.open(args.project) as project:
        written = export_masks(project.video(args.video), args.out_dir, source=args.source, fmt=args.format)
    print(f"wrote {len(written)} masks to {args.out_dir}")
    return 0


def demo(args) -> int:
    """Import the bundled phantom clip, store ground-truth keyframes every 200 frames, propagate, check drift, export."""
    from ..pipeline import run_demo

    project_dir = run_demo(args.out)
    info(type("A", (), {"project": str(project_dir), "video": None, "json": False}))
    print(f"demo project: {project_dir}")
    return 0


def keyframes_import(args) -> int:
    from ..masks import import_keyframe_masks
    from ..store import Project

    frames = _frame_list(args.frames)
    with Project.open(args.project, "a") as project:
        palette = load_palette(args.palette) if args.palette else None
        frames = import_keyframe_masks(
            project.video(args.video),
            args.masks,
            who=args.who,
            frames=frames,
            palette=palette,
            max_unknown_fraction=args.max_unknown_fraction,
            swap_rb=args.bgr,
        )
    print(f"stored {len(frames)} keyframes: {frames}")
    return 0


def _frame_list(text: str | None) -> list[int] | None:
    if not text:
        return None
    try:
        return sorted({int(v) for v in text.replace(" ", "").split(",") if v})
    except ValueError:
        raise InputError(f"--frames must be comma-separated frame numbers, got {text!r}") from None


def labels_import(args) -> int:
    from ..masks import import_label_sequence
    from ..store import Project

    with Project.open(args.project, "a") as project:
        palette = load_palette(args.palette) if args.palette else None
        n = import_label_sequence(
            project.video(args.video),
            args.masks,
            who=args.who,
            palette=palette,
            swap_rb=args.bgr,
            max_unknown_fraction=args.max_unknown_fraction,
            progress=True,
        )
    print(f"stored {n} frames of labels from {args.masks} (source 'imported'); check them with `sonolabel drift {args.project} {args.video}`")
    return 0


def keyframes_suggest(args) -> int:
    from ..propagation.config import FINE_KEYFRAME_GAP
    from ..propagation.suggest import keyframe_advice
    from ..store import Project

    gap = args.gap or FINE_KEYFRAME_GAP
    with Project.open(args.project) as project:
        frames, ready = keyframe_advice(project.video(args.video), count=args.count, gap=gap)
    print(" ".join(map(str, frames)))
    if ready:
        print(
            f"keyframes at most {gap} frames apart: `sonolabel propagate {args.project} {args.video} --fine` should leave few frames to fix",
            file=sys.stderr,
        )
    return 0


def propagate(args) -> int:
    from ..pipeline import run_propagation
    from ..store import Project

    with Project.open(args.project, "a") as project:
        reports = run_propagation(
            project, args.videos, args.device, args.config, args.mode, args.weights, scheduler=args.scheduler, workers=args.workers, fine=args.fine
        )
    for r in reports:
        print(
            f"{r.video}: {r.frames_written} frames in {r.segments_done} segments ({r.segments_skipped} unchanged, skipped), "
            f"{r.frames_written / max(r.seconds, 1e-9):.1f} frames/s, mode {r.mode}" + (f" ({r.choice.reason})" if r.choice else "")
        )
    return 0


def propagation_train(args) -> int:
    from ..propagation.train import TrainConfig, train_propagation
    from ..store import Project

    from ..propagation import PropagationConfig
    from ..propagation.modes import compare_modes

    with Project.open(args.project, "a") as project:
        path = train_propagation(project, TrainConfig(minutes=args.minutes, seed=args.seed, device=args.device))
        print(f"stored propagation weights in {path}")
        print("leave-one-keyframe-out mIoU per video (each keyframe read from its neighbours):")
        choices = compare_modes(project, PropagationConfig(device=args.device))
    for vid, c in choices.items():
        print(f"  {vid}: free {c.scores['free']:.3f}, learned {c.scores['learned']:.3f} -> {c.mode}")
    worse = [vid for vid, c in choices.items() if c.scores["learned"] < c.scores["free"]]
    if worse:
        print(
            f"warning: the trained keys are worse than the training-free ones on {len(worse)} of {len(choices)} videos "
            f"({', '.join(worse)}); `propagate` (mode auto) keeps the training-free keys there"
        )
    if not choices:
        print("no video has two keyframes to compare the modes on; `propagate` (mode auto) uses the training-free keys until one has")
    return 0


def export(args) -> int:
    from tqdm import tqdm

    from ..export import ExportConfig, export_dataset
    from ..export.splits import read_splits
    from ..store import Project

    if args.format == "nnunet":
        from ..export.nnunet import export_nnunet

        cfg = ExportConfig(videos=args.videos, include_unreviewed=args.include_unreviewed, val_fraction=args.val_fraction, seed=args.seed)
        with Project.open(args.project) as project, tqdm(desc="export", unit="frame") as bar:
            summary = export_nnunet(project, args.out, cfg, progress=bar.update)
        print(
            f"wrote an nnU-Net v2 raw dataset of {summary['numTraining']} cases to {args.out} ({summary['folds']} subject-grouped folds in splits_final.json)"
        )
        return 0

    cfg = ExportConfig(
        size=args.size, videos=args.videos, include_unreviewed=args.include_unreviewed, label_resize=args.labels, val_fraction=args.val_fraction, seed=args.seed
    )
    with Project.open(args.project) as project, tqdm(desc="export", unit="frame") as bar:
        out = export_dataset(project, args.out, cfg, progress=bar.update, scheduler=args.scheduler, workers=args.workers)
        n = bar.n
    splits = read_splits(out)
    print(f"exported {n} frames to {out} (train subjects {splits['train']}, val {splits['val']}, {len(splits['folds'])} leave-one-subject-out folds)")
    return 0
