"""Which frames `keyframes suggest` picks: evenly spaced before any keyframe, then the frame that halves
the longest reach of propagation."""

import numpy as np

from sonolabel.propagation.config import FINE_KEYFRAME_GAP
from sonolabel.propagation.suggest import evenly_spaced, longest_reach, ready_to_finish, widest_gaps


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
