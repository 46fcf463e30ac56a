"""Which frames `keyframes suggest` picks: evenly spaced before any keyframe, then where a keyframe removes the most estimated error."""

import numpy as np

from sonolabel.propagation.suggest import by_error, evenly_spaced


def test_evenly_spaced_frames_sit_in_the_middle_of_equal_shares():
    assert evenly_spaced(2000, count=1) == [1000]
    assert evenly_spaced(2000, count=4) == [250, 750, 1250, 1750]
    assert evenly_spaced(1000, every=200) == [0, 200, 400, 600, 800, 999]  # the reference pipeline's grid


def test_a_pick_goes_to_the_middle_of_the_longest_unsure_stretch_not_next_to_a_keyframe():
    n = 1000
    near = np.minimum(np.abs(np.arange(n) - 100), np.abs(np.arange(n) - 300))
    error = 0.001 * near  # error grows with the distance to keyframes 100 and 300
    error[100] = error[300] = 0
    first, second = by_error(error, [100, 300], count=2)
    assert 550 <= first <= 800  # the long tail after 300, well inside it
    assert second != first and min(abs(second - k) for k in (100, 300, first)) >= 40


def test_an_error_burst_draws_the_pick_to_it():
    n = 600
    error = np.full(n, 0.02)
    error[400:440] = 0.3  # propagation was unsure here
    error[[0, 599]] = 0
    (t,) = by_error(error, [0, 599], count=1)
    assert 395 <= t <= 445
