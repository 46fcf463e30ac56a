"""The ``sonolabel`` command line: subcommands, one-line errors, tracebacks only with --debug."""

from __future__ import annotations

import argparse
import sys

from .. import __version__
from ..errors import SonolabelError
from . import commands, rank_commands, review_commands, train_commands
from .options import add_batch_options


def _mask_source_options(s: argparse.ArgumentParser, max_unknown: float, who: str) -> None:
    """PROJECT VIDEO --masks and the options of reading masks from another tool."""
    s.add_argument("project")
    s.add_argument("video")
    s.add_argument(
        "--masks", required=True, metavar="DIR|VIDEO", help="folder of colour, palette or index masks named by frame, a CVAT export, or a mask video"
    )
    s.add_argument("--palette", help="palette of the masks: preset (forearm, davis) or JSON file (default: the project's)")
    s.add_argument("--bgr", action="store_true", help="colour masks are BGR (e.g. written by OpenCV): swap red and blue")
    s.add_argument(
        "--max-unknown-fraction", type=float, default=max_unknown, help="refuse a mask with more pixels far from every palette colour than this share"
    )
    s.add_argument("--who", help=who)


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="sonolabel", description="Annotation and dataset curation for forearm ultrasound video.")
    p.add_argument("--version", action="version", version=f"sonolabel {__version__}")
    p.add_argument("--debug", action="store_true", help="show the full traceback on errors")
    sub = p.add_subparsers(dest="command", required=True, metavar="COMMAND")

    s = sub.add_parser("phantom", help="write phantom forearm ultrasound recordings with ground truth")
    s.add_argument("out", help="new folder for the recordings")
    s.add_argument("--subjects", type=int, default=2)
    s.add_argument("--frames", type=int, default=400)
    s.add_argument("--seed", type=int, default=0)
    s.add_argument("--trials", type=int, default=1, help="recordings per subject")
    s.add_argument("--fps", type=float, default=20.0)
    s.set_defaults(func=commands.phantom)

    s = sub.add_parser(
        "import",
        help="import a recording (video, frame folder, DICOM, TIFF stack, HDF5, Clarius raw) or image/mask pairs",
        description="Import into PROJECT (created when missing); prints the new video's id as the last line.",
    )
    s.add_argument("project")
    s.add_argument(
        "source",
        help="mp4/avi file, frame folder, DICOM (.dcm), TIFF / OME-TIFF stack, .h5 session, "
        "Clarius *_env.raw, a folder with images/ and "
        "masks/, or a .csv manifest of many recordings (columns source, subject, trial, task, "
        "kinematics, fps, crop, mm_per_pixel, dedupe; --subject then not needed)",
    )
    s.add_argument("--subject")
    s.add_argument("--trial")
    s.add_argument("--task")
    s.add_argument("--crop", help="x,y,w,h of the ultrasound box (default: the DICOM region, else detected)")
    s.add_argument("--fps", type=float, help="frame rate when the source does not say")
    s.add_argument("--mm-per-pixel", type=float, help="pixel spacing in mm (default: from the DICOM, OME-TIFF or Clarius header)")
    s.add_argument("--dedupe", action="store_true", help="drop frames that repeat the previous one (screen captures recorded faster than the scanner)")
    s.add_argument("--kinematics", help="CSV with one row per frame (columns: frame, time, thumb, index, ...)")
    s.add_argument(
        "--key", action="append", default=[], metavar="ROLE=PATH", help="HDF5 dataset for a role (image, time, kinematics, thumb..little); repeatable"
    )
    s.add_argument("--masks", help="mask folder for image/mask pairs (default SOURCE/masks)")
    s.add_argument("--bgr", action="store_true", help="colour masks are BGR: swap red and blue")
    s.add_argument("--palette", help="palette preset or JSON file for a new project (default: forearm)")
    add_batch_options(s)
    s.set_defaults(func=commands.import_)

    s = sub.add_parser("info", help="show a project's videos, or one video's details")
    s.add_argument("project")
    s.add_argument("video", nargs="?")
    s.add_argument("--json", action="store_true", help="machine-readable output")
    s.set_defaults(func=commands.info)

    s = sub.add_parser("quantize", help="colour masks (a folder or a mask video) to index PNGs by nearest palette colour")
    s.add_argument("in_dir", metavar="IN", help="folder of colour masks, or a mask video (one PNG per frame: 000000.png, ...)")
    s.add_argument("out_dir")
    s.add_argument("--palette", default="forearm", help="preset (forearm, davis) or JSON file")
    s.add_argument("--tolerance", type=float, default=40.0, help="RGB distance beyond which a colour is unknown")
    s.add_argument("--max-unknown-fraction", type=float, help="fail when a mask has more unknown pixels than this")
    s.add_argument("--bgr", action="store_true", help="masks are BGR: swap red and blue")
    add_batch_options(s)
    s.set_defaults(func=commands.quantize)

    masks = sub.add_parser("masks", help="masks in and out of a project").add_subparsers(dest="masks_command", required=True, metavar="ACTION")
    s = masks.add_parser("export", help="write one PNG per labelled frame (000042.png)")
    s.add_argument("project")
    s.add_argument("video")
    s.add_argument("out_dir")
    s.add_argument("--source", default="final", choices=("keyframes", "propagated", "final"))
    s.add_argument("--format", default="index", choices=("index", "colour"))
    s.set_defaults(func=commands.masks_export)

    keyframes = sub.add_parser("keyframes", help="keyframe annotations in and suggestions out").add_subparsers(
        dest="keyframes_command", required=True, metavar="ACTION"
    )
    s = keyframes.add_parser("import", help="store masks named by frame (000200.png, frame_000200.png, 200.png) or frames of a mask video as keyframes")
    _mask_source_options(s, max_unknown=0.005, who="annotator name (default: the user)")
    s.add_argument("--frames", help="comma-separated keyframes to take (needed for a mask video; default: every mask)")
    s.set_defaults(func=commands.keyframes_import)

    labels = sub.add_parser("labels", help="whole label sequences from other tools").add_subparsers(dest="labels_command", required=True, metavar="ACTION")
    s = labels.add_parser(
        "import", help="store one mask per frame (a folder, CVAT export or mask video) as the video's labels, source 'imported'; keyframes are kept"
    )
    _mask_source_options(s, max_unknown=0.01, who="who made these labels (default: the user)")
    s.set_defaults(func=commands.labels_import)
    s = keyframes.add_parser("suggest", help="frames to annotate next: the fewest that make the keyframes dense enough to finish finely")
    s.add_argument("project")
    s.add_argument("video")
    s.add_argument("--gap", type=int, help="keyframes at most this many frames apart (default: FINE_KEYFRAME_GAP, 600)")
    s.add_argument("--count", type=int, help="this many frames: the plan's first, then the middles of the widest gaps")
    s.set_defaults(func=commands.keyframes_suggest)

    s = sub.add_parser("propagate", help="propagate keyframe labels to every frame (resumes; redoes only changed segments)")
    s.add_argument("project")
    s.add_argument("videos", nargs="*", help="video ids (default: all with keyframes)")
    s.add_argument("--device", default="auto", choices=("cpu", "cuda", "auto"))
    s.add_argument("--config", help="JSON file of propagation settings")
    s.add_argument("--mode", choices=("auto", "free", "learned"), help="key encoder (default auto: the mode that reads the keyframes better)")
    s.add_argument("--weights", help="a local propagation weights file (default: the project's own, when trained)")
    s.add_argument("--fine", action="store_true", help="at the fine working size (480), for the final labels: about 4x the time; later runs keep it")
    add_batch_options(s)
    s.set_defaults(func=commands.propagate)

    prop = sub.add_parser("propagation", help="propagation weights").add_subparsers(dest="propagation_command", required=True, metavar="ACTION")
    s = prop.add_parser("train", help="train the key encoder and refine head on the project's own frames and keyframes")
    s.add_argument("project")
    s.add_argument("--minutes", type=float, default=20.0, help="time budget on this machine")
    s.add_argument("--seed", type=int, default=0)
    s.add_argument("--device", default="auto", choices=("cpu", "cuda", "auto"))
    s.set_defaults(func=commands.propagation_train)

    s = sub.add_parser("export", help="write a training-ready zarr / OME-Zarr dataset with splits and kinematics")
    s.add_argument("project")
    s.add_argument("out", help="new dataset folder (written under a temporary name, renamed when complete); for nnU-Net a DatasetNNN_Name folder")
    s.add_argument(
        "--format", default="zarr", choices=("zarr", "nnunet"), help="zarr / OME-Zarr (default) or an nnU-Net v2 raw dataset (native resolution, PNG)"
    )
    s.add_argument("--size", type=int, default=240, help="square training size (default 240; zarr only)")
    s.add_argument("--videos", nargs="+", default=[], help="video ids (default: all)")
    s.add_argument("--include-unreviewed", action="store_true", help="also export frames flagged and awaiting review")
    s.add_argument("--labels", default="majority", choices=("majority", "nearest"), help="how labels are resized")
    s.add_argument("--val-fraction", type=float, default=0.1)
    s.add_argument("--seed", type=int, default=0)
    add_batch_options(s)
    s.set_defaults(func=commands.export)

    train_commands.add_parsers(sub)
    review_commands.add_parsers(sub)
    rank_commands.add_parsers(sub)

    s = sub.add_parser("demo", help="run the pipeline on the bundled phantom sample")
    s.add_argument("--out", help="folder for the demo project and outputs (default: a new temporary folder)")
    s.set_defaults(func=commands.demo)
    return p


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        return int(args.func(args) or 0)
    except SonolabelError as e:
        if args.debug:
            raise
        print(f"sonolabel: error: {e.one_line()}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("sonolabel: interrupted", file=sys.stderr)
        return 130
    except Exception as e:  # a bug, or an OS error worth one line (disk full, permissions)
        if args.debug:
            raise
        print(f"sonolabel: error: {type(e).__name__}: {e} — rerun with --debug for the traceback", file=sys.stderr)
        return 1


if __name__ == "__main__":
    sys.exit(main())
