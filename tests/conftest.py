import os

os.environ.setdefault("HF_HUB_OFFLINE", "1")  # a weights lookup fails at once instead of retrying
os.environ.setdefault("TQDM_DISABLE", "1")

from pathlib import Path  # noqa: E402

import numpy as np  # noqa: E402
import pytest  # noqa: E402

SHARED = Path(__file__).resolve().parents[1].parent / "shared" / "data"

# The robustness run (benchmarks/robustness.py, docs/testing.md) reruns the tests that assert a quality or
# timing figure under other seeds and thread counts. Those tests draw their data with QUALITY_SEED added
# to their own seeds, and report each figure through the `margin` fixture.
QUALITY_SEED = int(os.environ.get("SONOLABEL_TEST_SEED", "0"))
_MARGINS = os.environ.get("SONOLABEL_MARGINS")


def pytest_configure(config):
    threads = os.environ.get("SONOLABEL_TEST_THREADS")
    if threads:
        import torch

        torch.set_num_threads(int(threads))


@pytest.fixture
def margin(request):
    """``margin(value, threshold, name, higher=True)``: assert a quality figure clears its threshold, and
    record value, threshold and margin (to $SONOLABEL_MARGINS, a JSON-lines file, when set)."""

    def check(value: float, threshold: float, name: str, higher: bool = True) -> None:
        value, threshold = float(value), float(threshold)
        if _MARGINS:
            import json

            import torch

            with open(_MARGINS, "a") as f:
                f.write(
                    json.dumps(
                        {
                            "test": request.node.nodeid,
                            "figure": name,
                            "value": value,
                            "threshold": threshold,
                            "higher": higher,
                            "margin": (value - threshold) * (1 if higher else -1),
                            "seed": QUALITY_SEED,
                            "threads": torch.get_num_threads(),
                        }
                    )
                    + "\n"
                )
        assert (value > threshold) if higher else (value < threshold), f"{name}: {value:.4g} vs threshold {threshold:.4g}"

    return check


@pytest.fixture(scope="session")
def phantom_dir(tmp_path_factory):
    """A small phantom: 2 subjects x 24 frames (written once per test session)."""
    from sonolabel.phantom import generate_phantom

    out = tmp_path_factory.mktemp("phantom") / "ph"
    generate_phantom(out, subjects=2, frames=24, seed=3 + QUALITY_SEED)
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
    out[:, y : y + bh, x : x + bw] = rng.integers(40, 220, (n, bh, bw))
    return out


SIZE = 240  # side of the propagation test clip


@pytest.fixture(scope="module")
def clip():
    """61 phantom frames at 240x240 with ground truth: every 6th frame of 18 s, so that the two ends
    are several flexions apart (rendered at 480 and reduced). A clip of 9 s let copying the nearest
    keyframe come within 0.004 mIoU of propagation on some seeds: too little motion to test against."""
    import torch
    import torch.nn.functional as F

    from sonolabel.phantom import make_sequence
    from sonolabel.phantom.render import PhantomRenderer

    r = PhantomRenderer(make_sequence(4 + QUALITY_SEED, 1, 361))
    out = [r.render(t) for t in range(0, 361, 6)]
    imgs = torch.from_numpy(np.stack([o[0] for o in out]))[:, None].float()
    imgs = F.interpolate(imgs, size=(SIZE, SIZE), mode="area")[:, 0].round().byte().numpy()
    labels = np.stack([o[1][::2, ::2] for o in out])
    return imgs, labels


def make_video(project, clip, keyframes, vid="v"):
    imgs, labels = clip
    with project.staged_video(vid, len(imgs), SIZE, SIZE, {"subject": "s"}) as v:
        v.frames[:] = imgs
    v = project.video(vid)
    for k in keyframes:
        v.save_annotation(k, labels[k])
    return v


@pytest.fixture
def small_project(tmp_path):
    """A 41-frame phantom video at 240x240 with keyframes 0 and 40."""
    import torch
    import torch.nn.functional as F

    from sonolabel.phantom import make_sequence
    from sonolabel.phantom.render import PhantomRenderer
    from sonolabel.store import Project

    r = PhantomRenderer(make_sequence(2, 1, 41))
    out = [r.render(t) for t in range(41)]
    imgs = F.interpolate(torch.from_numpy(np.stack([o[0] for o in out]))[:, None].float(), size=(240, 240), mode="area")[:, 0].round().byte().numpy()
    labels = np.stack([o[1][::2, ::2] for o in out])
    path = tmp_path / "p.zarr"
    with Project.create(path) as p:
        with p.staged_video("S1-T1", 41, 240, 240, {"subject": "S1", "trial": "1", "fps": 20.0}) as v:
            v.frames[:] = imgs
        v = p.video("S1-T1")
        v.save_annotation(0, labels[0])
        v.save_annotation(40, labels[40])
    return path, labels


def sonolabel_cli(*args):
    """``sonolabel ARGS`` in this process (the parser, the commands and their one-line errors, without an
    interpreter start-up each time), as a CompletedProcess. test_cli.test_demo runs the real entry point."""
    import contextlib
    import io
    import subprocess
    import traceback

    from sonolabel.cli.main import main

    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        try:
            code = main([str(a) for a in args])
        except SystemExit as e:  # argparse: --help, a bad option
            code = e.code if isinstance(e.code, int) else int(e.code is not None)
        except Exception:  # --debug lets it through, as the interpreter would print it
            traceback.print_exc()
            code = 1
    return subprocess.CompletedProcess(list(args), code, out.getvalue(), err.getvalue())
