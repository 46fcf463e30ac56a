import json
import subprocess
import sys

import numpy as np
import pytest
from PIL import Image

from conftest import sonolabel_cli
from sonolabel.cli.main import main


run = sonolabel_cli


def test_cli_end_to_end_on_phantom(tmp_path, phantom_dir):
    from sonolabel.palette import FOREARM
    from sonolabel.phantom import read_manifest

    rec = read_manifest(phantom_dir)[0]
    proj = tmp_path / "proj.zarr"
    r = run("import", proj, phantom_dir / rec.video, "--subject", "sub-01", "--trial", "1", "--kinematics", phantom_dir / rec.kinematics)
    assert r.returncode == 0, r.stderr
    vid = r.stdout.strip().splitlines()[-1]
    assert vid == "sub-01-T1"
    r = run("info", proj, "--json")
    doc = json.loads(r.stdout)
    assert doc["videos"][0]["frames"] == 24 and doc["videos"][0]["kinematics"]
    assert "crop" in json.loads(run("info", proj, vid, "--json").stdout)["attrs"]
    assert "sub-01-T1" in run("info", proj).stdout

    # keyframes in, masks out
    import zarr

    from sonolabel.masks import import_keyframe_masks
    from sonolabel.store import Project

    truth = zarr.open_array(str(phantom_dir / rec.labels), mode="r")
    kdir = tmp_path / "k"
    kdir.mkdir()
    Image.fromarray(FOREARM.rgb[truth[5]]).save(kdir / "5.png")
    with Project.open(proj, "a") as p:
        assert import_keyframe_masks(p.video(vid), kdir) == [5]
    Image.fromarray(FOREARM.rgb[truth[20]]).save(kdir / "000020.png")
    r = run("keyframes", "import", proj, vid, "--masks", kdir)
    assert r.returncode == 0, r.stderr
    r = run("keyframes", "suggest", proj, vid, "--count", "2")
    assert r.returncode == 0 and len(r.stdout.split()) == 2, r.stderr
    assert f"sonolabel propagate {proj} {vid} --fine" in r.stderr  # two keyframes on 24 frames are dense enough to finish
    r = run("propagate", proj, vid, "--device", "cpu")
    assert r.returncode == 0, r.stderr
    assert f"{vid}: 22 frames" in r.stdout
    r = run("propagate", proj)  # nothing changed: every segment is skipped
    assert "0 frames" in r.stdout and "3 unchanged" in r.stdout
    r = run("propagate", proj, "--fine")  # the final fine pass reads every segment again
    assert f"{vid}: 22 frames" in r.stdout, r.stderr
    r = run("propagate", proj)  # and the default size keeps it
    assert "0 frames" in r.stdout and "3 unchanged" in r.stdout
    out = tmp_path / "masks"
    r = run("masks", "export", proj, vid, out, "--source", "keyframes", "--format", "index")
    assert r.returncode == 0, r.stderr
    assert sorted(f.name for f in out.iterdir()) == ["000005.png", "000020.png"]
    np.testing.assert_array_equal(np.asarray(Image.open(out / "000005.png")), truth[5])
    r = run("masks", "export", proj, vid, tmp_path / "c", "--format", "colour")
    assert len(list((tmp_path / "c").iterdir())) == 24
    np.testing.assert_array_equal(np.asarray(Image.open(tmp_path / "c" / "000005.png")), FOREARM.rgb[truth[5]])

    # quantize a folder of off-colour masks
    qin = tmp_path / "qin"
    qin.mkdir()
    noisy = np.clip(FOREARM.rgb[truth[5]].astype(int) + 7, 0, 255).astype(np.uint8)
    Image.fromarray(noisy).save(qin / "a.png")
    r = run("quantize", qin, tmp_path / "qout", "--max-unknown-fraction", "0.001")
    assert r.returncode == 0, r.stderr
    np.testing.assert_array_equal(np.asarray(Image.open(tmp_path / "qout" / "a.png")), truth[5])


def test_cli_errors_are_one_line_and_leave_nothing(tmp_path):
    bad = tmp_path / "broken.mp4"
    bad.write_bytes(b"\x00" * 100)
    r = run("import", tmp_path / "p.zarr", bad, "--subject", "S1")
    assert r.returncode == 2
    assert r.stderr.count("\n") == 1 and "broken.mp4" in r.stderr and "Traceback" not in r.stderr
    assert not (tmp_path / "p.zarr").exists()  # a failed first import leaves no project
    r = run("info", tmp_path / "nowhere")
    assert r.returncode == 2 and "not a sonolabel project" in r.stderr
    r = run("--debug", "info", tmp_path / "nowhere")
    assert "Traceback" in r.stderr


@pytest.mark.parametrize(
    "cmd",
    [
        [],
        ["phantom"],
        ["import"],
        ["info"],
        ["quantize"],
        ["masks", "export"],
        ["demo"],
        ["keyframes", "import"],
        ["keyframes", "suggest"],
        ["propagate"],
        ["train", "unet"],
        ["predict"],
        ["drift"],
        ["review", "list"],
        ["review", "exclude"],
    ],
)
def test_help_on_every_subcommand(cmd, capsys):
    with pytest.raises(SystemExit) as e:
        main([*cmd, "--help"])
    assert e.value.code == 0 and "usage:" in capsys.readouterr().out


def test_phantom_command(tmp_path):
    r = run("phantom", tmp_path / "ph", "--subjects", "1", "--frames", "5", "--seed", "2")
    assert r.returncode == 0, r.stderr
    assert (tmp_path / "ph" / "sub-01" / "trial-1" / "video.mp4").is_file()


def test_demo(tmp_path):
    """The README's command, as a user runs it (its own interpreter)."""
    r = subprocess.run([sys.executable, "-m", "sonolabel", "demo", "--out", str(tmp_path / "demo")], capture_output=True, text=True, timeout=600)
    assert r.returncode == 0, r.stderr
    assert len(list((tmp_path / "demo" / "masks").iterdir())) == 201  # keyframes and propagated frames
    assert "mIoU against ground truth" in r.stdout
    import zarr

    ds = zarr.open_group(str(tmp_path / "demo" / "dataset"), mode="r")
    assert ds["0"].shape == (201, 240, 240) and not np.isnan(ds["kinematics"][:]).any()
