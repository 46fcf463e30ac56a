"""Train the U-Net on real ultrasound: the usgra-seg images (nerve and vessel masks) from ``../shared``.

The whole path a lab would take: image/mask pairs -> project (importer, with the masks' 3-class
palette) -> training dataset (export) -> ``sonolabel train unet``. usgra-seg has no subject ids;
contiguous blocks of file names stand in for subjects, so that neighbouring (near-duplicate)
images stay on one side of the split.

    python examples/usgra_seg_unet.py OUT [--blocks 5] [--size 240] [--set epochs=10 ...]

Credit: usgra-seg dataset authors (CC-BY-4.0, see ../shared/data/usgra-seg/LICENSE).
"""

from __future__ import annotations

import argparse
import os
import time
from pathlib import Path

from sonolabel.export import ExportConfig, export_dataset
from sonolabel.io import import_stills
from sonolabel.store import Project
from sonolabel.training.config import config_from
from sonolabel.unet.train import UNetConfig, train_unet

USGRA = Path(__file__).resolve().parents[2] / "shared" / "data" / "usgra-seg"
PALETTE = {
    "classes": [
        {"value": 0, "name": "background", "color": [0, 0, 0]},
        {"value": 1, "name": "nerve", "color": [128, 0, 0]},
        {"value": 2, "name": "vessel", "color": [0, 128, 0]},
    ]
}


def build_dataset(out: Path, blocks: int, size: int) -> Path:
    names = sorted(p.name for p in (USGRA / "images").glob("*.png"))
    per_block = -(-len(names) // blocks)
    with Project.create(out / "usgra.zarr", palette=PALETTE) as project:
        for b in range(blocks):
            folder = out / "blocks" / f"block-{b + 1}"
            for kind in ("images", "masks"):
                (folder / kind).mkdir(parents=True)
                for name in names[b * per_block : (b + 1) * per_block]:
                    os.symlink(USGRA / kind / name, folder / kind / name)
            import_stills(project, folder, subject=f"block-{b + 1}", task="usgra-seg")
        return export_dataset(project, out / "dataset", ExportConfig(size=size, val_fraction=0.2))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("out", type=Path)
    ap.add_argument("--blocks", type=int, default=5)
    ap.add_argument("--size", type=int, default=240)
    ap.add_argument("--set", action="append", default=[], metavar="KEY=VALUE")
    args = ap.parse_args()
    if not USGRA.is_dir():
        raise SystemExit(f"{USGRA} not found: this example needs the shared usgra-seg sample")
    t0 = time.perf_counter()
    dataset = args.out / "dataset" if (args.out / "dataset").exists() else build_dataset(args.out, args.blocks, args.size)
    print(f"dataset {dataset} ready in {time.perf_counter() - t0:.0f} s")
    cfg = config_from(UNetConfig, sets=args.set)
    result = train_unet(dataset, args.out / "run", cfg)
    print(result.metrics["val"].round(3).to_string())


if __name__ == "__main__":
    main()
