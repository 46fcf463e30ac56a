"""Multi-page TIFF and OME-TIFF stacks, read page by page with tifffile.

The first series of the file is the recording: ``(T, H, W)`` grey or ``(T, H, W, 3|4)`` colour;
a single ``(H, W)`` page is a one-frame recording. Deeper integer types are scaled to 0-255 by
their stored bit depth. OME-TIFF's PhysicalSizeX/Y (with their units) give the pixel spacing.
"""

from __future__ import annotations

from pathlib import Path
from typing import Iterator

import numpy as np

from ..errors import InputError
from .sources import FrameSource, to_grey

_TO_MM = {"mm": 1.0, "µm": 1e-3, "um": 1e-3, "cm": 10.0, "m": 1e3, "nm": 1e-6}


def _ome_spacing(tif) -> tuple[float, float] | None:
    import re

    xml = tif.ome_metadata or ""
    sizes = {}
    for axis in ("X", "Y"):
        m = re.search(rf'PhysicalSize{axis}="([\d.eE+-]+)"', xml)
        unit = re.search(rf'PhysicalSize{axis}Unit="([^"]+)"', xml)
        if m:
            sizes[axis] = float(m.group(1)) * _TO_MM.get(unit.group(1) if unit else "µm", 1e-3)
    if "X" in sizes and "Y" in sizes:
        return sizes["Y"], sizes["X"]
    return None


class TiffStack(FrameSource):
    """A TIFF or OME-TIFF stack (one frame per page)."""

    def __init__(self, path: Path):
        import tifffile

        super().__init__(path)
        try:
            with tifffile.TiffFile(str(path)) as tif:
                series = tif.series[0]
                shape, axes, dtype = tuple(series.shape), series.axes, np.dtype(series.dtype)
                self.spacing_mm = _ome_spacing(tif) if tif.is_ome else None
        except (tifffile.TiffFileError, OSError, ValueError, IndexError) as e:
            raise InputError(f"cannot read TIFF ({e})", path, "check the file is a complete TIFF stack") from None
        colour = axes[-1] == "S" and shape[-1] in (3, 4)
        spatial = 3 if colour else 2
        if len(shape) < spatial or len(shape) > spatial + 1:
            raise InputError(f"TIFF series has axes {axes} {shape}; expected frames x height x width (x colour)", path, "save one grey or RGB image per page")
        self.n_frames_header = shape[0] if len(shape) == spatial + 1 else 1
        self.colour = int(colour)
        self.bits = dtype.itemsize * 8 if np.issubdtype(dtype, np.integer) else 8
        self.extra = {"tiff_axes": axes, "tiff_dtype": str(dtype)}

    def frames(self) -> Iterator[np.ndarray]:
        import tifffile

        with tifffile.TiffFile(str(self.path)) as tif:
            series = tif.series[0]
            paged = self.n_frames_header > 1 and len(series.pages) == self.n_frames_header
            # a short stack may be stored as one page of several planes: read it whole (it is small)
            whole = None if paged else series.asarray().reshape(self.n_frames_header, *series.shape[-2 - self.colour :])
            for i in range(self.n_frames_header):
                page = series.asarray(key=i) if paged else whole[i]
                if self.bits > 8:
                    page = page.astype(np.float32) * (255.0 / (2**self.bits - 1))
                yield to_grey(page)
