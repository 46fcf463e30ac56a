"""``sonolabel drift`` and ``sonolabel review ...``: flag drift, then accept, correct, exclude or reset."""

from __future__ import annotations

from ..errors import InputError
from .options import add_batch_options


def drift(args) -> int:
    from ..review import DriftConfig, run_drift
    from ..store import Project
    from ..training.config import config_from

    cfg = config_from(DriftConfig, path=args.config, sets=args.set)
    with Project.open(args.project, "a") as project:
        reports = run_drift(project, args.videos or None, model=args.model, cfg=cfg, scheduler=args.scheduler, workers=args.workers)
    for r in reports:
        print(f"{r.video}: {r.flags} flags ({r.consistency} consistency, {r.trend} trend, {r.outlier} outlier, {r.project} project); report {r.report}")
    print(f"review them: sonolabel review list {args.project}")
    return 0


def check(args) -> int:
    from ..propagation import PropagationConfig
    from ..review.check import run_check
    from ..store import Project

    overrides = {"device": args.device, "mode": args.mode}
    config = PropagationConfig.from_dict({k: v for k, v in overrides.items() if v is not None})
    with Project.open(args.project, "a") as project:
        results = run_check(project, args.videos or None, config, args.weights, progress=lambda v: print(f"checking {v} ..."))
    for r in results:
        est = "-" if r.estimate_miou is None else f"{r.estimate_miou:.3f} (worst keyframe {r.worst_miou:.3f})"
        bd = "" if r.boundary_px is None else f", boundary {r.boundary_px:.1f} px" + ("" if r.boundary_mm is None else f" ({r.boundary_mm:.2f} mm)")
        print(f"{r.video}: estimated mIoU at {2 * r.spacing:.0f}-frame keyframe spacing {est}{bd}; mode {r.mode}; {r.seconds:.0f} s")
        for f in r.flags:
            print(f"  flagged {f['id']}: {f['reason']}")
    if any(r.flags for r in results):
        print(f"review them: sonolabel review list {args.project}")
    return 0


def _target(log, args) -> tuple[str, int, int, str | None]:
    """(video, start, stop, flag id) from a flag id or --video with --frames A-B."""
    if args.flag:
        f = log.find_flag(args.flag)
        return f["video"], f["start"], f["stop"], f["id"]
    if not (args.video and args.frames):
        raise InputError("name a flag id, or give --video and --frames A-B")
    a, _, b = args.frames.partition("-")
    try:
        start, stop = int(a), int(b or a) + 1
    except ValueError:
        raise InputError(f"--frames needs A-B (inclusive frame numbers), got {args.frames!r}") from None
    return args.video, start, stop, None


def review(args) -> int:
    from ..review import ReviewLog
    from ..store import Project

    if args.review_command == "list":
        with Project.open(args.project) as project:
            queue = ReviewLog(project).queue(None if args.all else "pending")
        if queue.empty:
            print("nothing to review" if not args.all else "no flags (run `sonolabel drift PROJECT` first)")
            return 0
        for _, f in queue.head(args.limit).iterrows():
            print(f"[{f['state']:9s}] {f['severity']:6.2f}  {f['id']}\n            {f['reason']}")
            if isinstance(f["class"], str):
                box = f["box"] if isinstance(f["box"], list) else None
                where = f": rows {box[0]}-{box[2] - 1}, columns {box[1]}-{box[3] - 1}" if box else ""
                print(f"            {f['class']}{where}")
        if len(queue) > args.limit:
            print(f"... {len(queue) - args.limit} more (--limit)")
        return 0
    if args.review_command == "log":
        with Project.open(args.project) as project:
            for e in ReviewLog(project).events():
                print(f"{e['at']}  {e['who']:10s} {e['action']:8s} {e['video']} {e['start']}-{e['stop'] - 1}  {e.get('note', '')}")
        return 0
    with Project.open(args.project, "a") as project:
        log = ReviewLog(project)
        video, start, stop, flag = _target(log, args)
        log.record(args.review_command, video, start, stop, who=args.who, note=args.note or "", flag=flag)
    print(f"{args.review_command}: {video} frames {start}-{stop - 1}")
    return 0


def add_parsers(sub) -> None:
    s = sub.add_parser("drift", help="per-frame signals, drift flags and a PNG report per video")
    s.add_argument("project")
    s.add_argument("videos", nargs="*", help="video ids (default: all with labels)")
    s.add_argument("--model", help="U-Net checkpoint: predict first, adding its loss curves to the signals")
    s.add_argument("--config", help="JSON file of drift settings (DriftConfig)")
    s.add_argument("--set", action="append", default=[], metavar="KEY=VALUE")
    add_batch_options(s)
    s.set_defaults(func=drift)

    s = sub.add_parser("check", help="leave-one-keyframe-out: estimated label quality per video, and keyframes that disagree with their neighbours")
    s.add_argument("project")
    s.add_argument("videos", nargs="*", help="video ids (default: all with two keyframes or more)")
    s.add_argument("--device", default="auto", choices=("cpu", "cuda", "auto"))
    s.add_argument("--mode", choices=("auto", "free", "learned"), help="key encoder, as for propagate")
    s.add_argument("--weights", help="a local propagation weights file (default: the project's own, when trained)")
    s.set_defaults(func=check)

    rv = sub.add_parser("review", help="the review queue: list, accept, correct, exclude, reset, log").add_subparsers(
        dest="review_command", required=True, metavar="ACTION"
    )
    s = rv.add_parser("list", help="flags awaiting review, most severe first")
    s.add_argument("project")
    s.add_argument("--all", action="store_true", help="include reviewed flags")
    s.add_argument("--limit", type=int, default=50)
    s.set_defaults(func=review)
    s = rv.add_parser("log", help="the audit trail of review actions")
    s.add_argument("project")
    s.set_defaults(func=review)
    for action, text in (
        ("accept", "labels are right as they are"),
        ("correct", "labels were corrected (in napari)"),
        ("exclude", "leave these frames out of exports"),
        ("reset", "back to pending"),
    ):
        s = rv.add_parser(action, help=text)
        s.add_argument("project")
        s.add_argument("flag", nargs="?", help="flag id (from `review list`)")
        s.add_argument("--video")
        s.add_argument("--frames", help="A-B, inclusive")
        s.add_argument("--who", help="reviewer (default: the user)")
        s.add_argument("--note", help="why")
        s.set_defaults(func=review)
