"""Colour masks to class-index masks, by nearest palette colour.

Masks from other tools (XMem/XMem++, CVAT, screenshots, JPEG exports) carry palette colours
off by a few RGB units and anti-aliased edges that blend two classes. A precomputed 24-bit
lookup table maps every RGB value to its nearest class and to how sure that is:

* *sure*: within half the tolerance of a palette colour; taken as is;
* *near*: within the tolerance; taken unless a sure neighbour of another class explains it better;
* *unknown*: farther than the tolerance from every colour; counted and reported.

Pixels that are not sure (blends, JPEG ringing, unknown colours) are settled from the sure
pixels around them: they take, among the classes present in their neighbourhood, the one whose
colour is nearest. A blend of two classes therefore becomes one of those two, never a third.

Lossy video (h264 with 4:2:0 chroma) blends colours over several pixels at every boundary, and a
blend can land right on a third class's colour. With ``edge_radius`` > 0 a pixel is sure only
where its colour is flat over the ``(2r+1)²`` window around it; pixels near a colour edge are
*blends*, settled from the flat regions on either side and never taking a colour of their own
(nor counted as unknown: only a flat region of a foreign colour is).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from functools import lru_cache
from pathlib import Path

import numpy as np

from ._files import staged_folder
from .errors import InputError
from .palette import Palette

SURE, NEAR, UNKNOWN, BLEND = 0, 1, 2, 3
_LEVEL_SHIFT = 8


@dataclass
class QuantizeReport:
    """What quantizing one mask found. ``unknown_*`` counts pixels beyond the tolerance."""

    source: str
    shape: tuple[int, int]
    unknown_count: int = 0
    unknown_bbox: tuple[int, int, int, int] | None = None  # y0, x0, y1, x1 (exclusive)
    unknown_first: list[tuple[int, int]] = field(default_factory=list)  # (y, x), up to 5
    settled_count: int = 0
    probable_bgr: bool = False
    swapped: bool = False

    @property
    def unknown_fraction(self) -> float:
        return self.unknown_count / max(1, self.shape[0] * self.shape[1])

    def summary(self) -> str:
        s = f"{self.source}: {self.unknown_fraction:.2%} unknown colours"
        if self.unknown_count:
            y0, x0, y1, x1 = self.unknown_bbox
            s += f" in box y{y0}:{y1} x{x0}:{x1}, first at (y,x) {self.unknown_first[:3]}"
        if self.probable_bgr:
            s += "; colours match far better with red and blue swapped (probable BGR): use --bgr"
        return s


@lru_cache(maxsize=8)
def _lookup_table(colors: tuple[tuple[int, int, int], ...], tolerance: float) -> np.ndarray:
    """uint16 table indexed by ``b<<16 | g<<8 | r``: nearest class in the low byte, level in the high byte."""
    r = np.arange(256, dtype=np.int32)
    best = np.full(1 << 24, np.iinfo(np.int32).max, np.int32)
    cls = np.zeros(1 << 24, np.uint16)
    for i, (cr, cg, cb) in enumerate(colors):
        # index order is (b, g, r) so the key is b<<16 | g<<8 | r
        d = ((r - cb) ** 2)[:, None, None] + ((r - cg) ** 2)[None, :, None] + ((r - cr) ** 2)[None, None, :]
        d = d.ravel()
        closer = d < best
        best[closer] = d[closer]
        cls[closer] = i
    level = np.where(best <= (tolerance / 2) ** 2, SURE, np.where(best <= tolerance**2, NEAR, UNKNOWN))
    return cls | (level.astype(np.uint16) << _LEVEL_SHIFT)


def _pack(rgb: np.ndarray) -> np.ndarray:
    """(H, W, 3) uint8 -> (H*W,) uint32 keys ``b<<16 | g<<8 | r`` without per-channel copies."""
    flat = np.ascontiguousarray(rgb, dtype=np.uint8).reshape(-1)
    n = flat.size // 3
    keys = np.empty(n, np.uint32)
    if n > 1:  # overlapping unaligned 4-byte reads at a 3-byte stride; the top byte is the next pixel's red
        words = np.ndarray((n - 1,), dtype="<u4", buffer=flat, strides=(3,))
        np.bitwise_and(words, 0xFFFFFF, out=keys[:-1])
    keys[-1] = int(flat[-3]) | int(flat[-2]) << 8 | int(flat[-1]) << 16
    return keys


class Quantizer:
    """Maps colour masks to index masks for one palette and tolerance (RGB Euclidean distance)."""

    def __init__(self, palette: Palette, tolerance: float = 40.0, window: int = 1, edge_radius: int = 0):
        self.palette = palette
        self.tolerance = float(tolerance)
        self.window = window
        self.edge_radius = int(edge_radius)
        self._lut = _lookup_table(palette.colors, self.tolerance)
        rgb = palette.rgb
        self.bgr_detectable = not np.array_equal(np.unique(rgb, axis=0), np.unique(rgb[:, ::-1], axis=0))

    def __call__(self, rgb: np.ndarray, swap_rb: bool = False, source: str = "<array>") -> tuple[np.ndarray, QuantizeReport]:
        """Quantize an ``(H, W, 3)`` RGB mask (``swap_rb`` for BGR input); returns labels and a report."""
        if rgb.ndim != 3 or rgb.shape[2] not in (3, 4):
            raise InputError(f"expected an (H, W, 3) colour mask, got shape {rgb.shape}", source)
        rgb = rgb[..., :3]
        if swap_rb:
            rgb = rgb[..., ::-1]
        h, w = rgb.shape[:2]
        coded = self._lut.take(_pack(rgb)).reshape(h, w)
        labels = (coded & 0xFF).astype(np.uint8)
        report = QuantizeReport(source=source, shape=(h, w), swapped=swap_rb)
        if self.edge_radius > 0:
            demote = self._near_edge(rgb)  # blends, also those far from every colour: only flat regions can be unknown
            coded = np.where(demote, (coded & 0xFF) | (BLEND << _LEVEL_SHIFT), coded).astype(np.uint16)
        if coded.max() < (1 << _LEVEL_SHIFT):  # every pixel sure: the common, fast case
            return labels, report
        level = coded >> _LEVEL_SHIFT
        unknown = level == UNKNOWN
        if unknown.any():
            ys, xs = np.nonzero(unknown)
            report.unknown_count = int(ys.size)
            report.unknown_bbox = (int(ys.min()), int(xs.min()), int(ys.max()) + 1, int(xs.max()) + 1)
            report.unknown_first = [(int(y), int(x)) for y, x in zip(ys[:5], xs[:5])]
            if self.bgr_detectable and not swap_rb:
                report.probable_bgr = self._looks_bgr(rgb, report.unknown_fraction)
        report.settled_count = self._settle(rgb, labels, level)
        return labels, report

    def _near_edge(self, rgb: np.ndarray) -> np.ndarray:
        """Pixels whose colour varies by more than half the tolerance over the window around them."""
        from scipy import ndimage

        size = 2 * self.edge_radius + 1
        spread = np.zeros(rgb.shape[:2], np.int16)
        for c in range(3):
            ch = np.ascontiguousarray(rgb[..., c])
            spread = np.maximum(spread, ndimage.maximum_filter(ch, size).astype(np.int16) - ndimage.minimum_filter(ch, size))
        return spread > self.tolerance / 2

    def _looks_bgr(self, rgb: np.ndarray, unknown_fraction: float) -> bool:
        if unknown_fraction < 0.01:
            return False
        sample = rgb[::4, ::4, ::-1]
        swapped_unknown = float(np.mean((self._lut.take(_pack(sample)) >> _LEVEL_SHIFT) == UNKNOWN))
        return swapped_unknown < 0.25 * unknown_fraction

    def _settle(self, rgb: np.ndarray, labels: np.ndarray, level: np.ndarray) -> int:
        """Settle pixels that are not sure (in place): each takes the nearest-coloured class among the
        sure pixels around it; a *near* pixel also keeps its own class as a candidate."""
        h, w = labels.shape
        sure = level == SURE
        ys, xs = np.nonzero(~sure)
        pal = self.palette.rgb.astype(np.int32)
        none = np.iinfo(np.int64).max
        n_settled = 0
        for _ in range(64):  # grow out from the sure pixels until every pixel is settled
            if ys.size == 0:
                break
            colour = rgb[ys, xs].astype(np.int32)
            own = labels[ys, xs]
            best_c = own.copy()
            best_d = np.where(level[ys, xs] == NEAR, ((colour - pal[own]) ** 2).sum(1), none)
            found = np.zeros(ys.size, bool)
            r = self.window
            for dy in range(-r, r + 1):
                for dx in range(-r, r + 1):
                    ny, nx = np.clip(ys + dy, 0, h - 1), np.clip(xs + dx, 0, w - 1)
                    ok = sure[ny, nx]
                    c = labels[ny, nx]
                    d = ((colour - pal[c]) ** 2).sum(1)
                    found |= ok
                    better = ok & (d < best_d)
                    best_d[better] = d[better]
                    best_c[better] = c[better]
            labels[ys[found], xs[found]] = best_c[found]
            sure[ys[found], xs[found]] = True
            n_settled += int(found.sum())
            ys, xs = ys[~found], xs[~found]
        return n_settled  # pixels no sure pixel can reach keep their nearest colour


def read_mask(
    path: str | Path, palette: Palette, quantizer: Quantizer | None = None, swap_rb: bool = False, by_colour: bool = False
) -> tuple[np.ndarray, QuantizeReport]:
    """Read one mask file as class indices: a palette PNG or an index PNG is taken as is, colour images are
    quantized; ``by_colour`` quantizes palette PNGs by their colours too (their indices are another tool's)."""
    from PIL import Image, UnidentifiedImageError

    path = Path(path)
    try:
        with Image.open(path) as im:
            im.load()
            mode = im.mode
            colour = ("RGBA", "LA", "CMYK", "YCbCr") + (("P", "PA") if by_colour else ())
            arr = np.asarray(im.convert("RGB") if mode in colour else im)
    except (OSError, UnidentifiedImageError) as e:
        raise InputError(f"cannot read mask image ({e})", path, "check the file is a PNG, JPEG or TIFF image") from None
    if arr.ndim == 3:
        q = quantizer or Quantizer(palette)
        return q(arr, swap_rb=swap_rb, source=str(path))
    labels = arr
    if labels.max(initial=0) >= len(palette):
        bad = sorted(set(np.unique(labels).tolist()) - set(range(len(palette))))[:8]
        raise InputError(
            f"index mask holds values {bad} but the palette has {len(palette)} classes (0-{len(palette) - 1})",
            path,
            "use the project's palette, or save the mask as a colour PNG to quantize it",
        )
    return labels.astype(np.uint8), QuantizeReport(source=str(path), shape=labels.shape[:2])


def check_unknown(rep: QuantizeReport, limit: float | None, path: str | Path) -> None:
    """Refuse a mask (``path``: its file, or a video and frame) with a larger share than ``limit`` of pixels
    far from every palette colour; the error says where they are and whether the mask looks BGR."""
    if limit is None or rep.unknown_fraction <= limit:
        return
    raise InputError(
        f"{rep.unknown_fraction:.2%} of pixels match no palette colour (limit {limit:.2%}); first at (y,x) {rep.unknown_first[:3]}"
        + ("; the colours match far better with red and blue swapped (probable BGR)" if rep.probable_bgr else ""),
        path,
        "rerun with --bgr"
        if rep.probable_bgr
        else "check the masks use the palette (--palette, or see `sonolabel info PROJECT`), add --bgr for BGR masks, or raise --max-unknown-fraction",
    )


def write_index_png(path: str | Path, labels: np.ndarray, palette: Palette | None = None) -> None:
    """Write labels as a PNG, as a palette PNG (indices with the palette's colours) when a palette is given."""
    from PIL import Image

    labels = np.ascontiguousarray(labels, dtype=np.uint8)
    h, w = labels.shape
    im = Image.frombytes("P" if palette is not None else "L", (w, h), labels.tobytes())
    if palette is not None:
        flat = palette.rgb.reshape(-1).tolist()
        im.putpalette(flat + [0] * (768 - len(flat)))
    tmp = Path(path).with_name(f".{Path(path).name}.partial")
    im.save(tmp, format="PNG")
    tmp.replace(path)


MASK_SUFFIXES = (".png", ".jpg", ".jpeg", ".tif", ".tiff", ".bmp")


def _quantize_files(job: tuple, quantizer: Quantizer | None = None, bar=None) -> list[QuantizeReport]:
    """Quantize ``files`` into index PNGs in ``staging``; refuses a mask with too many unknown pixels."""
    files, staging, palette, tolerance, max_unknown_fraction, swap_rb = job
    q = quantizer or Quantizer(palette, tolerance)
    reports = []
    for f in files:
        labels, rep = read_mask(f, palette, q, swap_rb=swap_rb)
        check_unknown(rep, max_unknown_fraction, f)
        write_index_png(Path(staging) / f"{f.stem}.png", labels, palette)
        reports.append(rep)
        if bar is not None:
            bar.update(1)
    return reports


def quantize_folder(
    in_dir: str | Path,
    out_dir: str | Path,
    palette: Palette,
    tolerance: float = 40.0,
    max_unknown_fraction: float | None = None,
    swap_rb: bool = False,
    progress: bool = False,
    workers: int | None = 1,
    scheduler: str | None = None,
) -> list[QuantizeReport]:
    """Quantize every mask in ``in_dir`` into index PNGs (same stem) in ``out_dir``.

    All files are checked before any is placed in ``out_dir``: with ``max_unknown_fraction``
    a mask with more unknown pixels fails the whole folder and ``out_dir`` is left untouched.
    ``workers`` > 1 or a ``scheduler`` address spreads the files over dask workers (same output).
    """
    from natsort import natsorted
    from tqdm import tqdm

    from .tasks import run_tasks

    in_dir, out_dir = Path(in_dir), Path(out_dir)
    if not in_dir.is_dir():
        raise InputError("no such folder", in_dir)
    files = natsorted(p for p in in_dir.iterdir() if p.suffix.lower() in MASK_SUFFIXES)
    if not files:
        raise InputError("no mask images (png/jpg/tif/bmp) in folder", in_dir)
    with staged_folder(out_dir) as staging:
        if scheduler is None and (workers or 1) <= 1:
            with tqdm(total=len(files), desc="quantize", unit="mask", disable=not progress) as bar:
                return _quantize_files((files, staging, palette, tolerance, max_unknown_fraction, swap_rb), Quantizer(palette, tolerance), bar)
        n_chunks = min(len(files), 4 * (workers or 2))
        jobs = [(files[i::n_chunks], str(staging), palette, tolerance, max_unknown_fraction, swap_rb) for i in range(n_chunks)]
        parts = run_tasks(_quantize_files, jobs, scheduler=scheduler, workers=workers, label="quantize")
        order = {str(f): i for i, f in enumerate(files)}
        return sorted((r for part in parts for r in part), key=lambda r: order.get(r.source, 0))
