"""Drift flags and the review audit trail, kept in the project.

::

    PROJECT/review/flags.json    the current flags of every video (rewritten atomically by `sonolabel drift`)
    PROJECT/review/audit.jsonl   every review action, one JSON line each, only ever appended

A frame's review state is derived, never stored as the truth: frames under a flag are
``pending`` until a review action (accept, correct, exclude, reset) covers them; the actions are
replayed from the audit log in order. The derived states are cached per video in
``table/review`` (with the worst covering flag's severity in ``table/drift``), which export
reads; a kill between appending an action and refreshing the cache is healed by the next sync.
"""

from __future__ import annotations

import getpass
import json
import os
import time
from pathlib import Path

import numpy as np
import pandas as pd

from ..errors import InputError, StoreError
from ..store import Project, Video

REVIEW_DIR = "review"
FLAGS_FILE = "flags.json"
AUDIT_FILE = "audit.jsonl"
ACTIONS = {"accept": "accepted", "correct": "corrected", "exclude": "excluded", "reset": None}
STATES = ("unreviewed", "pending", "accepted", "corrected", "excluded")


class ReviewLog:
    """Flags, review actions and per-frame review states of one project."""

    def __init__(self, project: Project):
        self.project = project
        self.dir = Path(project.path) / REVIEW_DIR

    # -- flags ---------------------------------------------------------------------------
    def flags(self, video: str | None = None) -> list[dict]:
        path = self.dir / FLAGS_FILE
        if not path.exists():
            return []
        try:
            flags = json.loads(path.read_text())["flags"]
        except (OSError, ValueError, KeyError) as e:
            raise StoreError(f"cannot read review flags ({e})", path, "rerun `sonolabel drift PROJECT` to rebuild them") from None
        return [f for f in flags if video is None or f["video"] == video]

    def set_flags(self, video: str, flags: list[dict], kinds: set[str] | None = None) -> None:
        """Replace ``video``'s flags (of ``kinds`` only, when given: drift and check own different kinds;
        other videos' flags stay) and refresh its cached states."""
        self.project.require_writable()
        self.dir.mkdir(exist_ok=True)
        kept = [f for f in self.flags() if f["video"] != video or (kinds is not None and f["kind"] not in kinds)]
        path = self.dir / FLAGS_FILE
        tmp = path.with_name(f".{FLAGS_FILE}.tmp-{os.getpid()}")
        tmp.write_text(json.dumps({"flags": kept + list(flags)}, indent=1))
        os.replace(tmp, path)
        self.sync(self.project.video(video))

    # -- audit log -----------------------------------------------------------------------
    def events(self) -> list[dict]:
        """Every review action in order; a line torn by a crash mid-write is skipped."""
        path = self.dir / AUDIT_FILE
        if not path.exists():
            return []
        out = []
        for line in path.read_text().splitlines():
            try:
                event = json.loads(line)
            except ValueError:
                continue
            if isinstance(event, dict) and event.get("action") in ACTIONS:
                out.append(event)
        return out

    def record(self, action: str, video: str, start: int, stop: int, who: str | None = None, note: str = "", flag: str | None = None) -> dict:
        """Append one review action on frames ``start..stop-1`` of ``video`` and refresh its cached states."""
        self.project.require_writable()
        if action not in ACTIONS:
            raise InputError(f"unknown review action {action!r}", hint=f"one of {', '.join(ACTIONS)}")
        v = self.project.video(video)
        if not 0 <= start < stop <= v.n_frames:
            raise InputError(f"frames {start}-{stop - 1} are outside video {video!r} (0-{v.n_frames - 1})")
        event = {
            "at": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
            "who": who or getpass.getuser(),
            "action": action,
            "video": video,
            "start": int(start),
            "stop": int(stop),
            "flag": flag,
            "note": note,
        }
        self._append(event)
        self.sync(v)
        return event

    def _append(self, event: dict) -> None:
        self.dir.mkdir(exist_ok=True)
        path = self.dir / AUDIT_FILE
        fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
        try:
            size = os.fstat(fd).st_size
            prefix = b""
            if size:  # a torn last line (a crash mid-write) must not swallow this one
                with open(path, "rb") as fh:
                    fh.seek(size - 1)
                    prefix = b"" if fh.read(1) == b"\n" else b"\n"
            os.write(fd, prefix + (json.dumps(event) + "\n").encode())
            os.fsync(fd)
        finally:
            os.close(fd)

    # -- derived states --------------------------------------------------------------------
    def frame_states(self, video: Video) -> tuple[np.ndarray, np.ndarray]:
        """Per frame: review state (see STATES) and the worst covering flag's severity (NaN when none)."""
        n = video.n_frames
        state = np.full(n, "unreviewed", dtype=object)
        severity = np.full(n, np.nan, np.float32)
        flagged = np.zeros(n, bool)
        for f in self.flags(video.id):
            sl = slice(f["start"], f["stop"])
            flagged[sl] = True
            severity[sl] = np.fmax(severity[sl], f["severity"])
        state[flagged] = "pending"
        for e in self.events():
            if e["video"] != video.id:
                continue
            sl = slice(e["start"], e["stop"])
            new = ACTIONS[e["action"]]
            state[sl] = new if new else np.where(flagged[sl], "pending", "unreviewed")
        return state, severity

    def sync(self, video: Video) -> None:
        """Write ``table/review`` and ``table/drift`` from the flags and the audit log."""
        state, severity = self.frame_states(video)
        video.write_column("review", 0, state.astype(str))
        video.write_column("drift", 0, np.asarray(severity, np.float32))

    def queue(self, state: str | None = "pending", video: str | None = None) -> pd.DataFrame:
        """Flags (of ``video`` only, when given) with their review state, most severe first (``state=None``: all of
        them). A flag is pending while any of its frames is; one whose frames were reviewed differently (part
        excluded, part accepted) is ``mixed``. ``class`` and ``box`` ([y0, x0, y1, x1]) name the structure and
        region where the signal knows them."""
        rows = []
        states = {}
        for f in self.flags(video):
            if f["video"] not in states:
                states[f["video"]] = self.frame_states(self.project.video(f["video"]))[0]
            s = states[f["video"]][f["start"] : f["stop"]]
            values, counts = np.unique(s, return_counts=True)
            now = "pending" if "pending" in values else (str(values[0]) if len(values) == 1 else "mixed")
            rows.append({"class": None, "box": None, **f, "state": now})
        df = pd.DataFrame(rows, columns=["id", "video", "kind", "signal", "start", "stop", "severity", "reason", "class", "box", "state"])
        if state is not None:
            df = df[df["state"] == state]
        return df.sort_values("severity", ascending=False, kind="stable").reset_index(drop=True)

    def progress(self, video: str | None = None) -> dict[str, tuple[int, int]]:
        """Per flagged video (``video`` only, when given): (flags reviewed, flags in all); a flag counts as
        reviewed once none of its frames is pending."""
        q = self.queue(None, video=video)
        return {vid: (int((g["state"] != "pending").sum()), len(g)) for vid, g in q.groupby("video")}

    def find_flag(self, flag_id: str) -> dict:
        for f in self.flags():
            if f["id"] == flag_id:
                return f
        raise InputError(f"no flag {flag_id!r}", self.dir / FLAGS_FILE, "see `sonolabel review list PROJECT`")
