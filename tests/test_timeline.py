"""Propagation's per-pixel confidence and the per-video timeline the napari view draws."""

import numpy as np

from sonolabel.propagation import propagate_video
from sonolabel.review import ReviewLog
from sonolabel.review.timeline import video_timeline
from sonolabel.store import LabelSource, Project, layout


def test_propagation_stores_its_margin_and_the_timeline_reads_it(small_project):
    path, labels = small_project
    with Project.open(path, mode="a") as p:
        v = p.video("S1-T1")
        assert v.margin is None and v.lazy_uncertainty() is None
        before = video_timeline(v)
        assert before.keyframes == [0, 40] and np.isnan(before.confidence[1:40]).all()
        assert [(a, b, s) for a, b, s in before.runs()] == [(0, 1, LabelSource.ANNOTATED), (1, 40, LabelSource.NONE), (40, 41, LabelSource.ANNOTATED)]
        propagate_video(v)
        m = np.asarray(v.margin[:])
        assert m.shape[0] == 41 and m.shape[1] < 240  # on the key grid, not at store resolution
        assert (m[0] == layout.NO_MARGIN).all() and (m[40] == layout.NO_MARGIN).all()  # keyframes: nothing propagated
        inner = m[1:40]
        assert (inner <= layout.MARGIN_SCALE).all() and inner.mean() > 0.5 * layout.MARGIN_SCALE
        # uncertainty is high where classes meet, low inside structures: it sits on the labels' boundaries
        u = np.asarray(v.lazy_uncertainty()[20], float)
        lab = labels[20]
        edge = (np.diff(lab, axis=0, prepend=lab[:1]) != 0) | (np.diff(lab, axis=1, prepend=lab[:, :1]) != 0)
        cell = 240 // u.shape[0]
        near_edge = edge.reshape(u.shape[0], cell, u.shape[1], cell).any((1, 3))
        assert u[near_edge].mean() > 2 * u[~near_edge].mean()
        tl = video_timeline(v)
        assert [s for _, _, s in tl.runs()] == [LabelSource.ANNOTATED, LabelSource.PROPAGATED, LabelSource.ANNOTATED]
        assert tl.confidence[0] == 1 and np.isfinite(tl.confidence).all() and (tl.confidence[1:40] < 1).all()
        # a correction makes frame 20 a certain keyframe at once
        v.save_annotation(20, labels[20])
        assert (np.asarray(v.margin[20]) == layout.NO_MARGIN).all()
        tl = video_timeline(v)
        assert tl.corrected == [20] and tl.confidence[20] == 1 and np.asarray(v.lazy_uncertainty()[20]).max() == 0
        # labels imported from another tool carry no propagation confidence
        v.save_propagated(30, labels[30:35], source=LabelSource.IMPORTED)
        assert (np.asarray(v.margin[30:35]) == layout.NO_MARGIN).all() and np.isnan(video_timeline(v).confidence[30:35]).all()


def test_timeline_and_review_progress_carry_flags_with_their_state(small_project):
    path, _ = small_project
    with Project.open(path, mode="a") as p:
        log = ReviewLog(p)
        flags = [
            {"id": "a", "video": "S1-T1", "kind": "area", "signal": "area_FDS", "start": 5, "stop": 12, "severity": 0.9, "reason": "r"},
            {"id": "b", "video": "S1-T1", "kind": "area", "signal": "area_FDP", "start": 20, "stop": 25, "severity": 0.4, "reason": "r"},
        ]
        log.set_flags("S1-T1", flags)
        assert log.progress() == {"S1-T1": (0, 2)}
        log.record("accept", "S1-T1", 20, 25, who="anna", flag="b")
        assert log.progress() == {"S1-T1": (1, 2)}
        tl = video_timeline(p.video("S1-T1"), log)
        assert {(f["start"], f["stop"], f["state"]) for f in tl.flags} == {(5, 12, "pending"), (20, 25, "accepted")}


def test_margins_from_another_key_grid_are_resampled_to_the_stored_one(small_project):
    path, _ = small_project
    with Project.open(path, mode="a") as p:
        v = p.video("S1-T1")
        v.save_margin(1, np.full((3, 30, 30), 0.5))
        v.save_margin(4, np.full((2, 60, 60), 0.8))  # a segment propagated in another mode
        m = np.asarray(v.margin[:])
        assert m.shape == (41, 30, 30) and (m[1:4] == 125).all() and (m[4:6] == 200).all() and (m[6:] == layout.NO_MARGIN).all()
