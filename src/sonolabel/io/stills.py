"""Labelled still images: a folder of image/mask pairs sharing file names.

Layout: ``FOLDER/images/NAME.png`` with ``FOLDER/masks/NAME.png`` (or ``masks_dir`` given
separately). Masks may be palette PNGs or index PNGs (values are class indices) or colour
images (quantized to the project palette). Each pair becomes a one-frame video whose mask is
its annotation, so stills flow through review and export like video frames. Every pair is read
and checked before anything is written.
"""

from __future__ import annotations

import time
from pathlib import Path

from .. import __version__
from ..errors import InputError
from ..quantize import Quantizer, read_mask
from ..store import Project
from .importer import Crop, detect_box, sha256_of
from .sources import IMAGE_SUFFIXES, read_image_grey


def find_pairs(folder: Path, masks_dir: Path | None = None) -> list[tuple[Path, Path]]:
    from natsort import natsorted

    images_dir = folder / "images" if (folder / "images").is_dir() else folder
    masks_dir = masks_dir or folder / "masks"
    if not masks_dir.is_dir():
        raise InputError("no masks folder", masks_dir, "put masks in FOLDER/masks or pass --masks DIR")
    masks = {p.stem: p for p in masks_dir.iterdir() if p.suffix.lower() in IMAGE_SUFFIXES}
    images = natsorted((p for p in images_dir.iterdir() if p.suffix.lower() in IMAGE_SUFFIXES), key=lambda p: p.name)
    if not images:
        raise InputError("no images", images_dir)
    missing = [p.name for p in images if p.stem not in masks]
    if missing:
        raise InputError(f"{len(missing)} images have no mask with the same name (first: {missing[:3]})", masks_dir)
    return [(p, masks[p.stem]) for p in images]


def import_stills(
    project: Project,
    folder: str | Path,
    subject: str,
    masks_dir: str | Path | None = None,
    task: str | None = None,
    crop: Crop | str | None = None,
    swap_rb: bool = False,
    progress: bool = False,
) -> list[str]:
    """Import every image/mask pair of ``folder``; returns the new video ids (one per pair)."""
    from tqdm import tqdm

    project.require_writable()
    folder = Path(folder)
    if not folder.is_dir():
        raise InputError("no such folder", folder)
    if isinstance(crop, str):
        crop = Crop.parse(crop)
    q = Quantizer(project.palette)
    checked = []
    for img_path, mask_path in tqdm(find_pairs(folder, Path(masks_dir) if masks_dir else None), desc="check pairs", unit="pair", disable=not progress):
        image = read_image_grey(img_path)
        mask, report = read_mask(mask_path, project.palette, q, swap_rb=swap_rb)
        if mask.shape != image.shape:
            raise InputError(
                f"mask is {mask.shape[1]}x{mask.shape[0]} but its image {img_path.name} is {image.shape[1]}x{image.shape[0]}",
                mask_path,
                "masks must match their images pixel for pixel",
            )
        box = crop or detect_box(image).union_with_mask(mask)
        box.check(*image.shape, img_path)
        checked.append((img_path, mask_path, box, box.apply(image), box.apply(mask), report))
    ids = []
    collection = folder.name
    for img_path, mask_path, box, image, mask, report in tqdm(checked, desc="import stills", unit="pair", disable=not progress):
        vid = project.new_video_id(subject, None, img_path.stem)
        attrs = {
            "subject": str(subject),
            "trial": img_path.stem,
            "task": task,
            "fps": None,
            "kind": "still",
            "collection": collection,
            "source": str(img_path.resolve()),
            "sha256": sha256_of(img_path),
            "mask_source": str(mask_path.resolve()),
            "mask_sha256": sha256_of(mask_path),
            "mask_unknown_fraction": report.unknown_fraction,
            "crop": box.as_list(),
            "crop_detected": crop is None,
            "imported": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
            "tool_version": __version__,
        }
        with project.staged_video(vid, 1, *image.shape, attrs) as video:
            video.frames[0] = image
            video.save_annotation(0, mask, corrected=False, source_name=str(mask_path))
        ids.append(vid)
    return ids
