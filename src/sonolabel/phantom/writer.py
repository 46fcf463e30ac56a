"""Write phantom recordings to disk as a scanner and a motion-capture rig would leave them.

``OUT/manifest.json`` lists every recording; each lives in ``OUT/sub-XX/trial-N/``:
``video.mp4`` (640x480 H.264, the image in a 480x480 box), ``labels.zarr`` (ground truth,
uint8 (T, 480, 480)) and ``kinematics.csv`` (frame, time, and the five total flexion angles).
"""

from __future__ import annotations

import json
import shutil
from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from .. import __version__
from ..errors import InputError
from ..palette import FOREARM
from .kinematics import FINGERS
from .render import PhantomRenderer, make_sequence, phantom_box, screen_frame


@dataclass
class PhantomRecording:
    subject: str
    trial: int
    video: str
    labels: str
    kinematics: str
    frames: int
    fps: float
    crop: list[int]
    subject_seed: int


def _write_recording(folder: Path, subject_seed: int, trial: int, n_frames: int, fps: float, crf: int, progress) -> None:
    import av
    import zarr

    seq = make_sequence(subject_seed, trial, n_frames, fps)
    renderer = PhantomRenderer(seq)
    labels = zarr.create_array(str(folder / "labels.zarr"), shape=(n_frames, 480, 480), chunks=(1, 480, 480), dtype="uint8", fill_value=0)
    with av.open(str(folder / "video.mp4"), "w") as out:
        stream = out.add_stream("libx264", rate=int(round(fps)))
        stream.width, stream.height, stream.pix_fmt = 640, 480, "yuv420p"
        stream.options = {"crf": str(crf), "preset": "medium"}
        batch = []
        # render ahead in a thread while the encoder takes this frame (0.82 of the wall time on 2 cores); the
        # encoder sees the same frames in the same order, so the file is the same
        with ThreadPoolExecutor(max_workers=1) as ahead:
            rendered = [ahead.submit(renderer.render, t) for t in range(min(2, n_frames))]
            for t in range(n_frames):
                img, lab = rendered.pop(0).result()
                if t + 2 < n_frames:
                    rendered.append(ahead.submit(renderer.render, t + 2))
                frame = av.VideoFrame.from_ndarray(screen_frame(img), format="gray")
                for packet in stream.encode(frame):
                    out.mux(packet)
                batch.append(lab)
                if len(batch) == 64 or t == n_frames - 1:
                    labels[t + 1 - len(batch) : t + 1] = np.stack(batch)
                    batch = []
                progress(1)
        for packet in stream.encode():
            out.mux(packet)
    kin = pd.DataFrame(seq.kinematics, columns=list(FINGERS))
    kin.insert(0, "time", np.arange(n_frames) / fps)
    kin.insert(0, "frame", np.arange(n_frames))
    kin.to_csv(folder / "kinematics.csv", index=False, float_format="%.3f")


def generate_phantom(
    out: str | Path, subjects: int = 2, frames: int = 400, seed: int = 0, trials: int = 1, fps: float = 20.0, crf: int = 18, progress: bool = False
) -> list[PhantomRecording]:
    """Write ``subjects`` x ``trials`` phantom recordings of ``frames`` frames into ``out`` (a new folder)."""
    from tqdm import tqdm

    out = Path(out)
    if out.exists() and any(out.iterdir()):
        raise InputError("folder exists and is not empty", out, "choose a new folder for the phantom")
    if subjects < 1 or frames < 1 or trials < 1:
        raise InputError("--subjects, --frames and --trials must be at least 1")
    staging = out.with_name(f".{out.name}.partial")
    shutil.rmtree(staging, ignore_errors=True)
    staging.mkdir(parents=True)
    recordings = []
    bar = tqdm(total=subjects * trials * frames, desc="phantom", unit="frame", disable=not progress)
    try:
        for s in range(subjects):
            subject_seed = seed * 1000 + s
            for trial in range(1, trials + 1):
                rel = Path(f"sub-{s + 1:02d}") / f"trial-{trial}"
                (staging / rel).mkdir(parents=True)
                _write_recording(staging / rel, subject_seed, trial, frames, fps, crf, bar.update)
                recordings.append(
                    PhantomRecording(
                        subject=f"sub-{s + 1:02d}",
                        trial=trial,
                        video=str(rel / "video.mp4"),
                        labels=str(rel / "labels.zarr"),
                        kinematics=str(rel / "kinematics.csv"),
                        frames=frames,
                        fps=fps,
                        crop=list(phantom_box()),
                        subject_seed=subject_seed,
                    )
                )
        manifest = {
            "generator": "sonolabel.phantom",
            "tool_version": __version__,
            "seed": seed,
            "subjects": subjects,
            "trials": trials,
            "frames": frames,
            "fps": fps,
            "palette": FOREARM.to_dict(),
            "recordings": [asdict(r) for r in recordings],
        }
        (staging / "manifest.json").write_text(json.dumps(manifest, indent=1))
        bar.close()
        if out.exists():
            out.rmdir()
        staging.rename(out)
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise
    return recordings


def read_manifest(folder: str | Path) -> list[PhantomRecording]:
    folder = Path(folder)
    try:
        data = json.loads((folder / "manifest.json").read_text())
    except (OSError, ValueError) as e:
        raise InputError(f"not a phantom folder ({e})", folder) from None
    recordings = [PhantomRecording(**r) for r in data["recordings"]]
    root = folder.resolve()
    for rec in recordings:
        for rel in (rec.video, rec.labels, rec.kinematics):
            if not (folder / rel).resolve().is_relative_to(root):
                raise InputError(
                    f"manifest names {rel!r}, outside the phantom folder", folder / "manifest.json", "paths in a manifest must stay inside its folder"
                )
    return recordings
