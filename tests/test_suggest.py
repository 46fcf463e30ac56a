"""Which frames `keyframes suggest` picks: evenly spaced before any keyframe, then the frame that halves
the longest reach of propagation."""

import numpy as np

from sonolabel.propagation.suggest import evenly_spaced, widest_gaps


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
        k = sorted(keys)
        return max([k[0], 1999 - k[-1], *((b - a) / 2 for a, b in zip(k[:-1], k[1:]))])

    keys, reaches = [1000], [1000]
    for _ in range(9):
        keys += widest_gaps(2000, keys, 1)
        reaches.append(reach(keys))
    assert len(set(keys)) == 10 and all(b <= a for a, b in zip(reaches[:-1], reaches[1:])) and reaches[-1] < reaches[0] / 5
    assert abs(reach(keys[:3]) - reach(evenly_spaced(2000, count=3))) <= 1
    assert widest_gaps(5, [0, 1, 2, 3, 4], 3) == []  # every frame is a keyframe: nothing to suggest
    assert sorted(widest_gaps(10, [0, 9], 20)) == list(range(1, 9))
    assert np.all(np.diff(sorted(widest_gaps(2000, [0, 1999], 3))) > 0)
