"""Readers that turn a recording into grey uint8 frames: video files, frame folders, HDF5, Clarius raw,
DICOM (:mod:`.dicom`) and TIFF stacks (:mod:`.tiff`).

Each reader is a :class:`FrameSource`: it knows how many frames its header promises, its frame
rate, the pixel spacing and the image box when the file says, and yields frames in order. Frames
are counted as decoded, never derived from timestamps.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Iterator

import numpy as np

from ..errors import InputError

VIDEO_SUFFIXES = (".mp4", ".avi", ".mov", ".mkv", ".m4v", ".wmv", ".mpg", ".mpeg")
IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".tif", ".tiff", ".bmp")
HDF5_SUFFIXES = (".h5", ".hdf5", ".hdf")
DICOM_SUFFIXES = (".dcm", ".dicom")
TIFF_SUFFIXES = (".tif", ".tiff")
IGNORED_NAMES = (".DS_Store", "Thumbs.db", "desktop.ini")  # never frames, whatever their suffix


def to_grey(img: np.ndarray) -> np.ndarray:
    """RGB(A) or grey image -> grey uint8 (ITU-R 601 luma)."""
    img = np.asarray(img)
    if img.ndim == 3:
        img = img[..., :3].astype(np.float32) @ np.array([0.299, 0.587, 0.114], np.float32)
    if img.dtype != np.uint8:
        if np.issubdtype(img.dtype, np.floating) and img.max(initial=0) <= 1.0:
            img = img * 255.0
        img = np.clip(np.rint(img), 0, 255)
    return img.astype(np.uint8)


@dataclass
class FrameSource:
    """A recording to import; subclasses implement :meth:`frames`."""

    path: Path
    n_frames_header: int = 0  # 0 when the container does not say
    fps: float | None = None
    kinematics: np.ndarray | None = None
    kinematics_columns: list[str] = field(default_factory=list)
    extra: dict = field(default_factory=dict)
    spacing_mm: tuple[float | None, float | None] | None = None  # (row, column) mm per pixel, when the file says
    region: tuple[int, int, int, int] | None = None  # x, y, w, h of the image box, when the file says

    def frames(self) -> Iterator[np.ndarray]:  # pragma: no cover - abstract
        raise NotImplementedError

    def sample(self, k: int = 48) -> np.ndarray:
        """The first ``k`` frames (for detecting the ultrasound box)."""
        out = []
        for f in self.frames():
            out.append(f)
            if len(out) >= k:
                break
        if not out:
            raise InputError("holds no frames", self.path, "check the recording is not empty")
        return np.stack(out)


class VideoFile(FrameSource):
    """mp4/avi/... decoded with PyAV (FFmpeg)."""

    def __init__(self, path: Path):
        import av

        super().__init__(path)
        try:
            with av.open(str(path)) as c:
                if not c.streams.video:
                    raise InputError("has no video stream", path)
                s = c.streams.video[0]
                if s.codec_context is None:
                    tag = getattr(s, "codec_tag", "") or "unknown"
                    raise InputError(
                        f"uses a video codec that cannot be decoded here (tag {tag!r})",
                        path,
                        "re-export the recording as H.264 mp4 (e.g. ffmpeg -i IN -c:v libx264 OUT.mp4)",
                    )
                self.n_frames_header = int(s.frames or 0)
                rate = s.average_rate or s.guessed_rate
                self.fps = float(rate) if rate else None
                self.extra = {"codec": s.codec_context.name, "container": c.format.name}
        except InputError:
            raise
        except (av.FFmpegError, OSError, UnicodeDecodeError) as e:
            raise InputError(f"cannot open video ({e})", path, "check the file is a complete mp4/avi video") from None

    def frames(self) -> Iterator[np.ndarray]:
        import av

        try:
            with av.open(str(self.path)) as c:
                for frame in c.decode(video=0):
                    yield frame.to_ndarray(format="gray")
        except av.FFmpegError as e:
            raise InputError(
                f"video cannot be decoded ({e})", self.path, "the file may be truncated or use an unsupported codec; re-export it as H.264 mp4"
            ) from None


class ImageFolder(FrameSource):
    """A folder of frames (png/jpg/tif/bmp) in natural sort order; all the same size."""

    def __init__(self, path: Path, fps: float | None = None):
        from natsort import natsorted
        from PIL import Image, UnidentifiedImageError

        super().__init__(path, fps=fps)
        self.files = natsorted(
            (p for p in path.iterdir() if p.suffix.lower() in IMAGE_SUFFIXES and p.name not in IGNORED_NAMES and not p.name.startswith("._")),
            key=lambda p: p.name,
        )
        if not self.files:
            raise InputError("no image files (png/jpg/tif/bmp) in folder", path)
        sizes = {}
        for f in self.files:
            try:
                with Image.open(f) as im:
                    sizes.setdefault(im.size, f)
            except (OSError, UnidentifiedImageError) as e:
                raise InputError(f"cannot read image ({e})", f, "remove or replace the file") from None
            if len(sizes) > 1:
                (s0, f0), (s1, f1) = list(sizes.items())[:2]
                raise InputError(
                    f"frames differ in size: {f0.name} is {s0[0]}x{s0[1]}, {f1.name} is {s1[0]}x{s1[1]}",
                    path,
                    "a frame folder must hold frames of one size; split or resize it",
                )
        self.n_frames_header = len(self.files)

    def frames(self) -> Iterator[np.ndarray]:
        from PIL import Image

        for f in self.files:
            with Image.open(f) as im:
                yield to_grey(np.asarray(im))


def read_image_grey(path: Path) -> np.ndarray:
    from PIL import Image, UnidentifiedImageError

    try:
        with Image.open(path) as im:
            return to_grey(np.asarray(im))
    except (OSError, UnidentifiedImageError) as e:
        raise InputError(f"cannot read image ({e})", path) from None


class ClariusRaw(FrameSource):
    """Clarius raw export ``*_env.raw`` (B pre-scan, 1 byte per sample) with its ``.yml`` header.

    Layout: five little-endian uint32 (id, frames, lines, samples, sample size in bytes), then per
    frame an int64 timestamp and lines x samples x sample-size bytes. Frames are stored as
    (samples, lines): depth down, scan lines across, as on the screen before scan conversion.
    """

    def __init__(self, path: Path):
        super().__init__(path)
        raw = path.read_bytes()
        if len(raw) < 20:
            raise InputError("too short for a Clarius raw file", path)
        _, n, lines, samples, size = np.frombuffer(raw[:20], "<u4").tolist()
        if size != 1:
            raise InputError(f"sample size {size} bytes; only 8-bit envelope (*_env.raw) data is supported", path, "import the *_env.raw file, not *_iq.raw")
        per = 8 + lines * samples * size
        if n == 0 or len(raw) < 20 + n * per:
            got = max(0, (len(raw) - 20) // per) if per else 0
            raise InputError(
                f"header promises {n} frames of {lines}x{samples} but the file holds {got}",
                path,
                "the export is truncated; export it again from the Clarius app",
            )
        self.n_frames_header = n
        self._layout = (lines, samples, per)
        self.timestamps = [int(np.frombuffer(raw[20 + i * per : 28 + i * per], "<i8")[0]) for i in range(n)]
        yml = path.with_suffix(".yml")
        header = yml.read_text(errors="replace") if yml.is_file() else ""
        m = re.search(r"frame rate:\s*([\d.]+)", header)
        self.fps = float(m.group(1)) if m else None
        for key, pat in (("imaging_depth_mm", r"imaging depth:\s*([\d.]+)\s*mm"), ("type", r"type:\s*(.+)")):
            mm = re.search(pat, header)
            if mm:
                self.extra[key] = mm.group(1).strip()
        self.extra["geometry"] = "pre-scan"
        rate = re.search(r"sampling rate:\s*([\d.]+)\s*MHz", header)
        if rate:  # axial sample spacing c / (2 fs) at 1540 m/s; the line pitch is not in the header
            self.spacing_mm = (1540e3 / (2 * float(rate.group(1)) * 1e6), None)

    def frames(self) -> Iterator[np.ndarray]:
        lines, samples, per = self._layout
        with open(self.path, "rb") as f:
            for i in range(self.n_frames_header):
                f.seek(20 + i * per + 8)
                data = np.frombuffer(f.read(lines * samples), np.uint8).reshape(lines, samples)
                yield np.ascontiguousarray(data.T)


def open_source(path: str | Path, fps: float | None = None, h5_keys: dict[str, str] | None = None) -> FrameSource:
    """The right reader for ``path`` (a video file, a frame folder, an HDF5 session or a Clarius raw file)."""
    from .dicom import DicomFile, is_dicom
    from .hdf5 import HDF5Session
    from .tiff import TiffStack

    path = Path(path)
    if not path.exists():
        raise InputError("no such file or folder", path)
    if path.is_dir():
        src: FrameSource = ImageFolder(path, fps=fps)
    else:
        suffix = path.suffix.lower()
        if suffix in HDF5_SUFFIXES:
            src = HDF5Session(path, keys=h5_keys)
        elif suffix == ".raw":
            src = ClariusRaw(path)
        elif suffix in VIDEO_SUFFIXES:
            src = VideoFile(path)
        elif suffix in TIFF_SUFFIXES:
            src = TiffStack(path)
        elif suffix in DICOM_SUFFIXES or is_dicom(path):
            src = DicomFile(path)
        else:
            raise InputError(
                f"unsupported file type {suffix!r}",
                path,
                f"import a video ({', '.join(VIDEO_SUFFIXES)}), a frame folder, a TIFF stack, a DICOM file, an HDF5 session (.h5) or a Clarius *_env.raw",
            )
    if fps:
        src.fps = fps
    return src
