"""DICOM ultrasound (single-frame and multi-frame cine loops) read with pydicom.

What is taken from the header (DICOM PS3.3):

* frames: NumberOfFrames (0028,0008), decoded one at a time (``pydicom.pixels.iter_pixels``);
* colour: MONOCHROME1/2, RGB, YBR_FULL and YBR_FULL_422 (pydicom converts YBR to RGB; RGB
  becomes grey by luma);
* frame rate: FrameTime (0018,1063, ms), FrameTimeVector (0018,1065), CineRate (0018,0040) or
  RecommendedDisplayFrameRate (0008,2144), in that order;
* spacing and image box: the first 2-D tissue region of the Sequence of Ultrasound Regions
  (0018,6011): PhysicalDeltaX/Y in cm (units code 3) and RegionLocationMinX0..MaxY1; else
  PixelSpacing (0028,0030, mm, row then column).

A compressed transfer syntax needs a decoder plugin (pylibjpeg or GDCM); without one, the import
stops with one error naming what to install.
"""

from __future__ import annotations

from pathlib import Path
from typing import Iterator

import numpy as np

from ..errors import InputError
from .sources import FrameSource, to_grey

CM = 3  # PhysicalUnitsX/YDirection code for centimetres
TISSUE = 1  # RegionSpatialFormat code for a 2-D tissue image
NATIVE = ("1.2.840.10008.1.2", "1.2.840.10008.1.2.1", "1.2.840.10008.1.2.2")  # uncompressed transfer syntaxes
DECODERS = "pip install pylibjpeg pylibjpeg-libjpeg pylibjpeg-openjpeg (or python-gdcm)"


def is_dicom(path: Path) -> bool:
    """True when ``path`` carries the DICOM preamble's ``DICM`` marker (files without a suffix)."""
    try:
        with open(path, "rb") as f:
            f.seek(128)
            return f.read(4) == b"DICM"
    except OSError:
        return False


def _fps(ds) -> float | None:
    if ds.get("FrameTime"):
        return 1000.0 / float(ds.FrameTime)
    vector = ds.get("FrameTimeVector")
    if vector and len(vector) > 1:
        steps = np.asarray([float(v) for v in vector[1:]])
        if (steps > 0).all():
            return 1000.0 / float(np.mean(steps))
    for key in ("CineRate", "RecommendedDisplayFrameRate"):
        if ds.get(key):
            return float(ds.get(key))
    return None


def _region(ds) -> tuple[tuple[float, float] | None, tuple[int, int, int, int] | None]:
    """(row, column) mm per pixel and the x, y, w, h box of the first 2-D tissue ultrasound region."""
    for r in ds.get("SequenceOfUltrasoundRegions", []) or []:
        if r.get("RegionSpatialFormat", TISSUE) != TISSUE:
            continue
        spacing = None
        if r.get("PhysicalUnitsXDirection") == CM and r.get("PhysicalUnitsYDirection") == CM and r.get("PhysicalDeltaX") and r.get("PhysicalDeltaY"):
            spacing = (abs(float(r.PhysicalDeltaY)) * 10.0, abs(float(r.PhysicalDeltaX)) * 10.0)
        box = None
        if all(r.get(k) is not None for k in ("RegionLocationMinX0", "RegionLocationMinY0", "RegionLocationMaxX1", "RegionLocationMaxY1")):
            x0, y0 = int(r.RegionLocationMinX0), int(r.RegionLocationMinY0)
            box = (x0, y0, int(r.RegionLocationMaxX1) - x0 + 1, int(r.RegionLocationMaxY1) - y0 + 1)
        return spacing, box
    if ds.get("PixelSpacing"):
        dy, dx = (float(v) for v in ds.PixelSpacing)
        return (dy, dx), None
    return None, None


class DicomFile(FrameSource):
    """A DICOM image or cine loop; frames decoded lazily, one at a time."""

    def __init__(self, path: Path):
        import pydicom
        from pydicom.errors import InvalidDicomError

        super().__init__(path)
        try:
            ds = pydicom.dcmread(str(path), stop_before_pixels=True)
        except (InvalidDicomError, OSError, ValueError, EOFError) as e:
            raise InputError(f"cannot read DICOM ({e})", path, "check the file is a complete DICOM file") from None
        if "PixelData" not in ds and not self._has_pixel_tag(path):
            raise InputError(
                "DICOM file holds no pixel data (a report or structured document?)", path, "export the cine loop or image itself from the scanner or PACS"
            )
        if not ds.get("Rows") or not ds.get("Columns"):
            raise InputError("DICOM file does not say its image size (Rows, Columns)", path)
        self.n_frames_header = int(ds.get("NumberOfFrames") or 1)
        self.fps = _fps(ds)
        spacing, box = _region(ds)
        self.spacing_mm = spacing
        if box is not None and box[0] >= 0 and box[1] >= 0 and box[0] + box[2] <= ds.Columns and box[1] + box[3] <= ds.Rows:
            self.region = box
        self.photometric = str(ds.get("PhotometricInterpretation", "MONOCHROME2"))
        self.bits_stored = int(ds.get("BitsStored") or 8)
        syntax = ds.file_meta.get("TransferSyntaxUID") if hasattr(ds, "file_meta") else None
        self.extra = {
            "modality": ds.get("Modality"),
            "sop_class": str(ds.get("SOPClassUID", "")) or None,
            "photometric": self.photometric,
            "transfer_syntax": str(syntax) if syntax else None,
            "manufacturer": ds.get("Manufacturer"),
            "burned_in_annotation": ds.get("BurnedInAnnotation"),
        }

    @staticmethod
    def _has_pixel_tag(path: Path) -> bool:
        import pydicom

        ds = pydicom.dcmread(str(path), specific_tags=["PixelData"])
        return "PixelData" in ds

    def _decoded(self) -> Iterator[np.ndarray]:
        from pydicom.pixels import iter_pixels, pixel_array

        if self.photometric == "YBR_FULL_422" and self.extra.get("transfer_syntax") in NATIVE:
            # pydicom 3.0's iter_pixels sizes native 4:2:2 frames as 4:4:4 and stops early; index each frame
            for i in range(self.n_frames_header):
                yield pixel_array(str(self.path), index=i)
        else:
            yield from iter_pixels(str(self.path))

    def frames(self) -> Iterator[np.ndarray]:
        try:
            for arr in self._decoded():
                arr = self._to_8bit(arr)
                if self.photometric == "MONOCHROME1":  # inverted grey
                    arr = 255 - arr
                yield to_grey(arr)
        except (NotImplementedError, RuntimeError) as e:
            text = str(e)
            if "decod" in text.lower() or "plugin" in text.lower() or "transfer syntax" in text.lower():
                raise InputError(
                    f"no decoder here for this DICOM's compressed transfer syntax ({self.extra.get('transfer_syntax')})", self.path, DECODERS
                ) from None
            raise InputError(f"cannot decode DICOM pixel data ({text.splitlines()[0]})", self.path) from None
        except (ValueError, AttributeError, KeyError, EOFError) as e:
            raise InputError(f"cannot decode DICOM pixel data ({e})", self.path, "the file may be truncated; export it again") from None

    def _to_8bit(self, arr: np.ndarray) -> np.ndarray:
        """Scale stored values to 0-255 by the stored bit depth (the same scale for every frame)."""
        if arr.dtype == np.uint8:
            return arr
        top = float(2 ** min(self.bits_stored, 16) - 1)
        return np.clip(arr.astype(np.float32) * (255.0 / top), 0, 255).round().astype(np.uint8)
