"""kill -9 at random points of real work in a subprocess, then a restart: nothing lost, everything resumes.

20 kill points: 6 while saving annotations through the library, 6 during propagation, 4 during
export, 4 during U-Net training. The kill points are drawn from a seeded generator: after a
random number of progress lines and a random extra delay.
"""

import shutil
import signal
import subprocess
import sys
import time

import numpy as np
import pytest

from sonolabel.store import Project

RNG = np.random.default_rng(2026)


def run_and_kill(code: str, *args, after_lines: int, delay: float) -> list[str]:
    """Run ``code`` in a fresh interpreter, SIGKILL it after ``after_lines`` lines of output and ``delay`` s."""
    proc = subprocess.Popen([sys.executable, "-c", code, *map(str, args)], stdout=subprocess.PIPE, text=True)
    lines = []
    for _ in range(after_lines):
        line = proc.stdout.readline()
        if not line:
            break
        lines.append(line.strip())
    time.sleep(delay)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    return lines


@pytest.fixture(scope="module")
def base(tmp_path_factory):
    """A 48-frame phantom video at 120x120, ground truth alongside, keyframes 0, 24, 47."""
    from sonolabel.phantom import make_sequence
    from sonolabel.phantom.render import PhantomRenderer

    root = tmp_path_factory.mktemp("kill")
    r = PhantomRenderer(make_sequence(6, 1, 48))
    out = [r.render(t) for t in range(48)]
    imgs = np.stack([o[0][::4, ::4] for o in out])
    labels = np.stack([o[1][::4, ::4] for o in out])
    with Project.create(root / "p.zarr") as p:
        with p.staged_video("v", 48, 120, 120, {"subject": "s1", "fps": 20.0}) as v:
            v.frames[:] = imgs
        v = p.video("v")
        for k in (0, 24, 47):
            v.save_annotation(k, labels[k])
    return root / "p.zarr", labels


ANNOTATE = """
import sys, numpy as np
from sonolabel.store import Project
with Project.open(sys.argv[1], "a") as p:
    v = p.video("v")
    for i in range(10**6):
        t = 1 + i % 46
        mask = np.full((120, 120), i % 8, np.uint8)
        mask[: i % 120] = (i + 1) % 8
        v.save_annotation(t, mask, who="k")
        print(i, t, flush=True)
"""


def mask(i: int) -> np.ndarray:
    m = np.full((120, 120), i % 8, np.uint8)
    m[: i % 120] = (i + 1) % 8
    return m


@pytest.mark.parametrize("k", range(6))
def test_kill_while_saving_annotations(base, tmp_path, k):
    path = tmp_path / "p.zarr"
    shutil.copytree(base[0], path)
    lines = run_and_kill(ANNOTATE, path, after_lines=int(RNG.integers(1, 60)), delay=float(RNG.uniform(0, 0.2)))
    assert lines
    last = {}
    for line in lines:  # every save that returned, latest per frame
        i, t = map(int, line.split())
        last[t] = i
    with Project.open(path, "a") as p:  # the dead writer's lock is recovered
        v = p.video("v")
        keys = set(v.annotated_frames())
        for t, i in last.items():
            assert t in keys
            got = np.asarray(v.annotated[t])
            # the reported save, or the next save of that frame that was in flight: never a mix of two
            assert any(np.array_equal(got, mask(j)) for j in (i, i + 46)), (t, i)
        assert {0, 24, 47} <= keys


PROPAGATE = """
import sys
from sonolabel.propagation import PropagationConfig, propagate_steps
from sonolabel.store import Project
with Project.open(sys.argv[1], "a") as p:
    for n in propagate_steps(p.video("v"), PropagationConfig(batch=4, working_size=120)):
        print(n, flush=True)
"""


@pytest.fixture(scope="module")
def reference(base, tmp_path_factory):
    from sonolabel.propagation import PropagationConfig, propagate_video

    path = tmp_path_factory.mktemp("ref") / "p.zarr"
    shutil.copytree(base[0], path)
    with Project.open(path, "a") as p:
        propagate_video(p.video("v"), PropagationConfig(batch=4, working_size=120))
        return np.asarray(p.video("v").propagated[:])


@pytest.mark.parametrize("k", range(6))
def test_kill_during_propagation_resumes_to_identical_labels(base, reference, tmp_path, k):
    from sonolabel.propagation import PropagationConfig, propagate_video

    path = tmp_path / "p.zarr"
    shutil.copytree(base[0], path)
    run_and_kill(PROPAGATE, path, after_lines=int(RNG.integers(1, 9)), delay=float(RNG.uniform(0, 0.3)))
    with Project.open(path, "a") as p:
        report = propagate_video(p.video("v"), PropagationConfig(batch=4, working_size=120))
        assert report.segments_done + report.segments_skipped == 2
        np.testing.assert_array_equal(np.asarray(p.video("v").propagated[:]), reference)


EXPORT = """
import sys
from sonolabel.export import ExportConfig, export_dataset
from sonolabel.store import Project
with Project.open(sys.argv[1]) as p:
    print("start", flush=True)
    export_dataset(p, sys.argv[2], ExportConfig(size=96), progress=lambda n: print(n, flush=True))
    print("done", flush=True)
"""


@pytest.mark.parametrize("k", range(4))
def test_kill_during_export_leaves_no_dataset(base, tmp_path, k):
    out = tmp_path / "ds"
    from sonolabel.export import ExportConfig, export_dataset
    from sonolabel.export.dataset import dataset_info, read_table

    run_and_kill(EXPORT, base[0], out, after_lines=1, delay=float(RNG.uniform(0, 1.0)))
    if out.exists():  # the kill came after the rename: then the dataset is whole
        with Project.open(base[0]) as p:
            ref = export_dataset(p, tmp_path / "ref", ExportConfig(size=96))
        assert dataset_info(out)["provenance"]["content_sha256"] == dataset_info(ref)["provenance"]["content_sha256"]
        assert len(read_table(out)) == len(read_table(ref))

    if not out.exists():
        with Project.open(base[0]) as p:
            export_dataset(p, out, ExportConfig(size=96))
    assert [d.name for d in tmp_path.iterdir() if d.name.startswith(".ds") or d.name.startswith(".ref")] == []  # dead staging removed


TRAIN = """
import sys
from sonolabel.unet.train import UNetConfig, train_unet
import sonolabel.unet.train as u
cfg = UNetConfig(epochs=4, encoder="resnet18", batch_size=4, lr=1e-3, workers=0, augment=False, steps_per_epoch=3)
orig = u.write_epoch_log
def logged(out, history):
    orig(out, history)
    print(len(history), flush=True)
u.write_epoch_log = logged
train_unet(sys.argv[1], sys.argv[2], cfg, progress=False)
"""


@pytest.fixture(scope="module")
def dataset(base, tmp_path_factory):
    from sonolabel.export import ExportConfig, export_dataset

    out = tmp_path_factory.mktemp("ds") / "ds"
    shutil.copytree(base[0], out.parent / "p.zarr")
    with Project.open(out.parent / "p.zarr", "a") as p:
        v = p.video("v")
        v.save_propagated(0, base[1])
        export_dataset(p, out, ExportConfig(size=64))
    return out


@pytest.mark.parametrize("k", range(4))
def test_kill_during_training_resumes_from_last_checkpoint(dataset, tmp_path, k):
    import pandas as pd

    from sonolabel.checkpoint import load_checkpoint
    from sonolabel.unet.train import UNetConfig, train_unet

    out = tmp_path / "run"
    lines = run_and_kill(TRAIN, dataset, out, after_lines=int(RNG.integers(2, 4)), delay=float(RNG.uniform(0, 1.0)))
    epochs_done = max([int(x) for x in lines if x.isdigit()] or [0])
    last = load_checkpoint(out / "last.pt", "unet")  # whole, never torn
    assert last["epoch"] + 1 >= epochs_done
    result = train_unet(
        dataset, out, UNetConfig(epochs=4, encoder="resnet18", batch_size=4, lr=1e-3, workers=0, augment=False, steps_per_epoch=3), progress=False
    )
    log = pd.read_csv(out / "log.csv")
    assert list(log["epoch"]) == [1, 2, 3, 4] and result.epochs_run == 4
