import os

os.environ.setdefault("HF_HUB_OFFLINE", "1")  # a weights lookup fails at once instead of retrying
os.environ.setdefault("TQDM_DISABLE", "1")

from pathlib import Path  # noqa: E402

import numpy as np  # noqa: E402
import pytest  # noqa: E402

SHARED = Path(__file__).resolve().parents[1].parent / "shared" / "data"


@pytest.fixture(scope="session")
def phantom_dir(tmp_path_factory):
    """A small phantom: 2 subjects x 24 frames (written once per test session)."""
    from sonolabel.phantom import generate_phantom

    out = tmp_path_factory.mktemp("phantom") / "ph"
    generate_phantom(out, subjects=2, frames=24, seed=3)
    return out


@pytest.fixture
def project(tmp_path):
    from sonolabel.store import Project

    with Project.create(tmp_path / "project.zarr") as p:
        yield p


def write_video(path: Path, frames: np.ndarray, fps: int = 20, codec: str = "libx264") -> Path:
    """Encode grey frames (T, H, W) into a real video file."""
    import av

    with av.open(str(path), "w") as out:
        s = out.add_stream(codec, rate=fps)
        s.height, s.width = frames.shape[1:]
        s.pix_fmt = "yuvj420p" if codec == "mjpeg" else "yuv420p"
        for f in frames:
            for pkt in s.encode(av.VideoFrame.from_ndarray(f, format="gray")):
                out.mux(pkt)
        for pkt in s.encode():
            out.mux(pkt)
    return path


def boxed_frames(n: int = 12, h: int = 120, w: int = 160, box=(20, 0, 120, 120), seed: int = 0) -> np.ndarray:
    """Frames with textured content in ``box`` (x, y, w, h) and black borders elsewhere."""
    rng = np.random.default_rng(seed)
    x, y, bw, bh = box
    out = np.zeros((n, h, w), np.uint8)
    out[:, y:y + bh, x:x + bw] = rng.integers(40, 220, (n, bh, bw))
    return out
