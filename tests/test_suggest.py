"""Which frames `keyframes suggest` picks before any keyframe: evenly spaced."""

from sonolabel.propagation.suggest import evenly_spaced


def test_evenly_spaced_frames_sit_in_the_middle_of_equal_shares():
    assert evenly_spaced(2000, count=1) == [1000]
    assert evenly_spaced(2000, count=4) == [250, 750, 1250, 1750]
    assert evenly_spaced(1000, every=200) == [0, 200, 400, 600, 800, 999]  # the reference pipeline's grid
