"""Leave-one-keyframe-out (`sonolabel check`): quality estimated without ground truth, and a keyframe drawn
wrong found among correct ones; real propagation on a phantom clip with ground truth on every frame."""

import numpy as np
import pytest

from conftest import make_video, sonolabel_cli
from sonolabel import InputError
from sonolabel.phantom.corrupt import nearest_neighbour_class
from sonolabel.pipeline import mean_iou
from sonolabel.propagation import PropagationConfig, propagate_video
from sonolabel.review import ReviewLog
from sonolabel.review.check import run_check

FREE = PropagationConfig(mode="free", device="cpu")
KEYS = list(range(0, 61, 10))


def _true_quality(project, clip, keys, vid):
    v = make_video(project, clip, keys, vid)
    propagate_video(v, FREE)
    return np.mean([mean_iou(v.labels(t), clip[1][t], 8) for t in range(v.n_frames)])


def test_estimate_follows_the_true_quality_at_twice_the_spacing(project, clip, margin):
    make_video(project, clip, KEYS)
    (r,) = run_check(project, ["v"], FREE)
    truth = _true_quality(project, clip, KEYS[::2], "every-20")
    assert r.spacing == 10 and len(r.keyframes) == len(KEYS) and r.flags == []
    margin(abs(r.estimate_miou - truth), 0.03, "|check estimate - true mIoU at twice the spacing|", higher=False)
    assert r.worst_miou <= r.estimate_miou and 0 < r.boundary_px < 5
    quality = {row["video"]: row["check_miou"] for row in project.summary()}
    assert quality == {"v": pytest.approx(r.estimate_miou), "every-20": None}
    project.video("v").save_annotation(25, clip[1][25])  # new keyframes: the estimate no longer applies
    assert {row["video"]: row["check_miou"] for row in project.summary()}["v"] is None


@pytest.mark.parametrize("damage", ["swap", "shift"])
def test_a_keyframe_drawn_wrong_is_flagged_and_its_neighbours_are_not(project, clip, damage):
    v = make_video(project, clip, KEYS)
    wrong, lab = 30, clip[1][30].copy()
    bone = 7  # radius
    if damage == "swap":  # two neighbouring muscles with their names exchanged
        a = 1
        b = nearest_neighbour_class(lab, a)
        lab[clip[1][30] == a], lab[clip[1][30] == b] = b, a
    else:  # the radius drawn 5 px (10 px at 480) too far right
        mask = clip[1][30] == bone
        lab[mask] = 0
        lab[np.roll(mask, 5, axis=1)] = bone
    v.save_annotation(wrong, lab)
    (r,) = run_check(project, ["v"], FREE)
    assert [f["start"] for f in r.flags] == [wrong], "\n".join(f["reason"] for f in r.flags)
    assert "disagrees with its neighbours" in r.flags[0]["reason"]
    # the flag names a class drawn wrong and boxes where it is (in the keyframe and where the neighbours have it)
    drawn_wrong = {a, b} if damage == "swap" else {bone}
    assert r.flags[0]["class"] in {project.palette.names[c] for c in drawn_wrong}, r.flags[0]["class"]
    y0, x0, y1, x1 = r.flags[0]["box"]
    changed = lab != clip[1][30]
    assert changed[y0:y1, x0:x1].sum() >= 0.99 * changed.sum()
    queue = ReviewLog(project).queue()
    assert queue["kind"].tolist() == ["keyframe"] and queue["start"].tolist() == [wrong]


def test_cli_check_prints_the_estimate_and_drift_keeps_keyframe_flags(project, clip, tmp_path):
    from sonolabel.review import DriftConfig, run_drift

    v = make_video(project, clip, KEYS)
    lab = clip[1][40].copy()
    lab[lab == 2] = 0  # FDP left out of keyframe 40
    v.save_annotation(40, lab)
    path = project.path
    project.close()
    r = sonolabel_cli("check", path, "--mode", "free", "--device", "cpu")
    assert r.returncode == 0, r.stderr
    assert "v: estimated mIoU at 20-frame keyframe spacing 0." in r.stdout and "flagged v:keyframe:40" in r.stdout
    assert "FDP IoU 0.00" in r.stdout
    from sonolabel.store import Project

    with Project.open(path, "a") as p:
        propagate_video(p.video("v"), FREE)
        run_drift(p, cfg=DriftConfig(consistency=False))  # label-only: what is tested is that check's flags stay
        kinds = {f["kind"] for f in ReviewLog(p).flags("v")}
        assert "keyframe" in kinds
        with pytest.raises(InputError, match="fewer than two keyframes"):
            make_video(p, clip, [0], "one")
            run_check(p, ["one"], FREE)
