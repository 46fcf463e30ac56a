"""Fast reads of whole frames from arrays chunked one frame per chunk.

zarr's Python API costs about a millisecond per chunk, ten times the zstd decode itself; training
loaders and exports read frames one by one and feel it. For arrays in the layout sonolabel writes
(local store, one frame per chunk, bytes + zstd codecs, default chunk keys) this reads the chunk
file and decodes it directly. Any other layout falls back to zarr, so results are the same.
"""

from __future__ import annotations

import os
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numcodecs
import numpy as np
import zarr
from zarr.codecs import BytesCodec, ZstdCodec
from zarr.core.chunk_key_encodings import DefaultChunkKeyEncoding


class FrameReader:
    """Reads frame ``t`` (all of axis 0's chunk ``t``) of a zarr array."""

    def __init__(self, array: zarr.Array):
        self.array = array
        self.shape = tuple(array.shape[1:])
        self.dtype = np.dtype(array.dtype)
        self.fill = np.full(self.shape, array.fill_value, dtype=self.dtype)
        self._dir = self._chunk_dir(array)
        self._zstd = numcodecs.Zstd()
        self._tail = ("0",) * len(self.shape)

    def _chunk_dir(self, array: zarr.Array) -> str | None:
        m = array.metadata
        root = getattr(array.store, "root", None)
        codecs = getattr(m, "codecs", ())
        ok = (
            root is not None
            and getattr(m.chunk_grid, "chunk_shape", None) == (1, *self.shape)
            and isinstance(m.chunk_key_encoding, DefaultChunkKeyEncoding)
            and m.chunk_key_encoding.separator == "/"
            and len(codecs) == 2
            and isinstance(codecs[0], BytesCodec)
            and isinstance(codecs[1], ZstdCodec)
            and (self.dtype.itemsize == 1 or self.dtype.byteorder in ("=", "<", "|"))
        )
        return os.path.join(str(root), array.path, "c") if ok else None

    @property
    def direct(self) -> bool:
        return self._dir is not None

    def __getitem__(self, t: int) -> np.ndarray:
        if self._dir is None:
            return np.asarray(self.array[int(t)])
        try:
            with open(os.path.join(self._dir, str(int(t)), *self._tail), "rb") as f:
                raw = f.read()
        except FileNotFoundError:
            return self.fill.copy()
        return np.frombuffer(self._zstd.decode(raw), dtype=self.dtype).reshape(self.shape).copy()

    def read_many(self, frames, pool: ThreadPoolExecutor | None = None) -> np.ndarray:
        """Frames ``frames`` stacked, (len(frames), *shape); decoded in ``pool`` when given."""
        frames = [int(t) for t in frames]
        if self._dir is None:
            return self.array.get_orthogonal_selection((np.asarray(frames),) + (slice(None),) * len(self.shape))
        out = pool.map(self.__getitem__, frames) if pool is not None else map(self.__getitem__, frames)
        return np.stack(list(out)) if frames else np.empty((0, *self.shape), self.dtype)


def open_reader(path: str | Path) -> FrameReader:
    return FrameReader(zarr.open_array(str(path), mode="r"))


class FrameWriter:
    """Writes whole frames of a new array created with one frame per chunk and bytes + zstd codecs.

    For arrays being built under a staging name (the export renames the finished folder into
    place), so a chunk is written directly rather than through a temporary file. Other layouts
    fall back to zarr.
    """

    def __init__(self, array: zarr.Array):
        self.array = array
        self._reader = FrameReader(array)
        codec = array.metadata.codecs[1] if self._reader.direct else None
        self._zstd = numcodecs.Zstd(level=codec.level) if codec is not None else None
        self._dir = self._reader._dir

    def write(self, t: int, frame: np.ndarray) -> None:
        if self._dir is None:
            self.array[int(t)] = frame
            return
        d = os.path.join(self._dir, str(int(t)), *self._reader._tail[:-1])
        os.makedirs(d, exist_ok=True)
        data = np.ascontiguousarray(frame, dtype=self._reader.dtype)
        with open(os.path.join(d, "0"), "wb") as f:
            f.write(self._zstd.encode(data))

    def write_many(self, start: int, frames: np.ndarray) -> None:
        for i, frame in enumerate(frames):
            self.write(start + i, frame)
