"""Editing a video's labels frame by frame, as a viewer does: an array that records edits and saves them.

:class:`LabelsEditor` looks like a (T, H, W) uint8 array of a video's final labels (annotated
where annotated, else propagated). Assignments (a brush stroke, a fill, an undo) change an
in-memory copy of the touched frames only; :meth:`LabelsEditor.save` stores each edited frame as
an annotation, atomically, and forgets it. A viewer calls ``save`` shortly after every stroke.
"""

from __future__ import annotations

from collections import OrderedDict

import numpy as np

from .store import Video
from .store.chunks import FrameReader
from .store.layout import NO_LABEL


class LabelsEditor:
    """Array-like (T, H, W) over ``video``'s final labels that records and saves edits per frame."""

    def __init__(self, video: Video, cache_frames: int = 32):
        self.video = video
        self.shape = (video.n_frames, video.height, video.width)
        self.dtype = np.dtype(np.uint8)
        self.ndim = 3
        self._annotated = FrameReader(video.annotated)
        self._propagated = FrameReader(video.propagated)
        self._dirty: dict[int, np.ndarray] = {}
        self._cache: OrderedDict[int, np.ndarray] = OrderedDict()
        self._cache_frames = cache_frames

    def __len__(self) -> int:
        return self.shape[0]

    # -- reading -------------------------------------------------------------------------
    def frame(self, t: int) -> np.ndarray:
        """Frame ``t`` as shown: the pending edit, else the stored annotation, else the propagated labels."""
        t = int(t)
        if t in self._dirty:
            return self._dirty[t]
        if t in self._cache:
            self._cache.move_to_end(t)
            return self._cache[t]
        ann = self._annotated[t]
        out = ann if ann[0, 0] != NO_LABEL else self._propagated[t]  # no annotation holds the fill value
        self._cache[t] = out
        if len(self._cache) > self._cache_frames:
            self._cache.popitem(last=False)
        return out

    def refresh(self) -> None:
        """Forget cached frames (after propagation wrote new labels)."""
        self._cache.clear()

    def __getitem__(self, key):
        if not isinstance(key, tuple):
            key = (key,)
        key = key + (slice(None),) * (3 - len(key))
        t = key[0]
        if isinstance(t, (int, np.integer)):
            return self.frame(t)[key[1:]]
        if isinstance(t, slice):
            frames = range(*t.indices(self.shape[0]))
            return (
                np.stack([self.frame(i) for i in frames])[(slice(None), *key[1:])]
                if len(frames)
                else np.empty((0, *self.shape[1:]), self.dtype)[(slice(None), *key[1:])]
            )
        t = np.asarray(t)  # point-wise (fancy) indexing: (ts, ys, xs), as napari's painting uses
        out = np.empty(t.shape, self.dtype)
        for u in np.unique(t):
            m = t == u
            out[m] = self.frame(int(u))[tuple(np.asarray(k)[m] if not isinstance(k, slice) else k for k in key[1:])]
        return out

    # -- editing -------------------------------------------------------------------------
    def _editable(self, t: int) -> np.ndarray:
        t = int(t)
        if t not in self._dirty:
            self._dirty[t] = np.array(self.frame(t), copy=True)
            self._cache.pop(t, None)
        return self._dirty[t]

    def __setitem__(self, key, value) -> None:
        if not isinstance(key, tuple):
            key = (key,)
        key = key + (slice(None),) * (3 - len(key))
        t = key[0]
        if isinstance(t, (int, np.integer)):
            self._editable(t)[key[1:]] = value
            return
        if isinstance(t, slice):
            for i, u in enumerate(range(*t.indices(self.shape[0]))):
                v = value if np.ndim(value) < 3 else np.asarray(value)[i]
                self._editable(u)[key[1:]] = v
            return
        t = np.asarray(t)
        value = np.asarray(value)
        for u in np.unique(t):
            m = t == u
            sub = tuple(np.asarray(k)[m] if not isinstance(k, slice) else k for k in key[1:])
            self._editable(int(u))[sub] = value[m] if value.ndim and value.shape == t.shape else value

    @property
    def pending(self) -> list[int]:
        """Frames edited and not yet saved."""
        return sorted(self._dirty)

    def save(self, who: str | None = None) -> list[int]:
        """Store every edited frame as an annotation (a keyframe; ``corrected`` when it had been
        propagated); returns the frames saved."""
        saved = []
        for t in sorted(self._dirty):
            self.video.save_annotation(t, self._dirty[t], who=who)
            self._cache[t] = self._dirty.pop(t)
            saved.append(t)
        return saved

    def __array__(self, dtype=None, copy=None):
        out = self[:]
        return out.astype(dtype) if dtype is not None else out
