"""Which frames `keyframes suggest` picks: the fewest that make the keyframes dense enough to finish finely,
then the frame that halves the longest reach of propagation."""

import math

import numpy as np

from sonolabel.propagation.config import FINE_KEYFRAME_GAP
from sonolabel.propagation.suggest import evenly_spaced, finish_plan, longest_reach, ready_to_finish, widest_gaps


def test_evenly_spaced_frames_sit_in_the_middle_of_equal_shares():
    assert evenly_spaced(2000, count=1) == [1000]
    assert evenly_spaced(2000, count=4) == [250, 750, 1250, 1750]
    assert evenly_spaced(1000, every=200) == [0, 200, 400, 600, 800, 999]  # the reference pipeline's grid


def test_suggestions_halve_the_longest_reach_and_rebuild_an_even_placement():
    # an inner gap is read from both ends: its middle; an end stretch from one side: a third of the way in
    assert widest_gaps(1000, [0, 999], 1) == [499]
    assert widest_gaps(1000, [500], 2) == [166, 833]
    assert widest_gaps(1000, [0, 100, 999], 1) == [549]  # the longest gap, not the first

    # one at a time from the first keyframe in the middle: the reach (how far the farthest frame lies from a
    # keyframe that reads it) never grows, and with three keyframes it is what evenly placed ones leave
    def reach(keys):
        return longest_reach(2000, keys)

    keys, reaches = [1000], [1000]
    for _ in range(9):
        keys += widest_gaps(2000, keys, 1)
        reaches.append(reach(keys))
    assert len(set(keys)) == 10 and all(b <= a for a, b in zip(reaches[:-1], reaches[1:])) and reaches[-1] < reaches[0] / 5
    assert abs(reach(keys[:3]) - reach(evenly_spaced(2000, count=3))) <= 1
    assert widest_gaps(5, [0, 1, 2, 3, 4], 3) == []  # every frame is a keyframe: nothing to suggest
    assert sorted(widest_gaps(10, [0, 9], 20)) == list(range(1, 9))
    assert np.all(np.diff(sorted(widest_gaps(2000, [0, 1999], 3))) > 0)


def test_the_reach_is_half_the_widest_gap_or_a_whole_end_stretch_and_says_when_to_finish():
    assert longest_reach(1000, []) == 1000  # nothing reads the video yet
    assert longest_reach(1000, [500]) == 500  # the end stretch before it, read from one side
    assert longest_reach(1000, [0, 600, 999]) == 300
    assert longest_reach(5, [0, 1, 2, 3, 4]) == 0
    gap = FINE_KEYFRAME_GAP
    assert not ready_to_finish(2000, [])
    assert ready_to_finish(2000, list(range(0, 2000, gap)) + [1999])  # every gap at most `gap`
    assert not ready_to_finish(2000, list(range(0, 2000, gap + 2)) + [1999])
    assert not ready_to_finish(2000, list(range(gap, 2000, gap)) + [1999])  # an end stretch of `gap` is read from one side
    # the suggestions get there one at a time, and a keyframe every 200 frames is always dense enough
    keys = [1000]
    while not ready_to_finish(2000, keys):
        keys += widest_gaps(2000, keys, 1)
    assert len(keys) <= 2000 // 200


def test_the_finish_plan_names_the_fewest_keyframes_that_make_a_video_ready_to_finish():
    gap = FINE_KEYFRAME_GAP
    # an empty video: evenly spaced, the one nearest the middle first, fewer than halving needs
    assert finish_plan(2000, []) == [750, 1250, 250, 1750]
    assert sorted(finish_plan(1300, [])) == [216, 650, 1083] and len(finish_plan(2500, [])) == 5
    # a stretch that reaches too far is split evenly, the frame next to a keyframe first
    assert finish_plan(2000, [0, 1999]) == [500, 1000, 1499]
    assert finish_plan(2000, [1000]) == [600, 200, 1400, 1800]
    assert finish_plan(2000, [250, 750, 1250, 1750]) == []  # dense enough already
    # on any placement it gets there, and no placement needs fewer: each stretch needs its own keyframes,
    # and no frame of an inner gap wider than `gap`, or an end stretch longer than `gap / 2`, can do with none
    rng = np.random.default_rng(0)
    for _ in range(500):
        n, g = int(rng.integers(2, 5000)), int(rng.integers(20, 900))
        keys = sorted({int(t) for t in rng.integers(0, n, int(rng.integers(1, 7)))})
        plan = finish_plan(n, keys, g)
        assert ready_to_finish(n, keys + plan, g) and not set(plan) & set(keys) and len(set(plan)) == len(plan)
        need = math.ceil(max(0, keys[0] - g / 2) / g) + math.ceil(max(0, n - 1 - keys[-1] - g / 2) / g)
        need += sum(math.ceil((b - a) / g) - 1 for a, b in zip(keys[:-1], keys[1:]))
        assert len(plan) == need
        halving = list(keys)
        while not ready_to_finish(n, halving, g):
            halving += widest_gaps(n, halving, 1)
        assert len(plan) <= len(halving) - len(keys)
    # one at a time, as the loop draws them, the plan keeps its count
    keys = [finish_plan(2000, [])[0]]
    while not ready_to_finish(2000, keys):
        keys.append(finish_plan(2000, keys)[0])
    assert len(keys) == 4 and len(finish_plan(2000, [], gap)) == 4


def test_the_front_ends_advice_is_the_suggestions_and_the_finish_rule(project):
    """`keyframes suggest` and napari's next-suggested read the keyframes once for both answers."""
    from sonolabel.propagation.suggest import keyframe_advice, suggest_keyframes

    vid = project.new_video_id("A", 1)
    with project.staged_video(vid, 1300, 8, 8, {"subject": "A", "trial": "1", "fps": 20.0}):
        pass
    video = project.video(vid)
    video.save_annotation(650, np.ones((8, 8), np.uint8))
    for count in (None, 1, 5):
        frames, ready = keyframe_advice(video, count)
        assert frames == suggest_keyframes(video, count) and not ready
    for t in finish_plan(1300, [650]):
        video.save_annotation(t, np.ones((8, 8), np.uint8))
    frames, ready = keyframe_advice(video, 1)
    assert ready and ready_to_finish(1300, video.annotated_frames()) and frames == widest_gaps(1300, video.annotated_frames(), 1)
