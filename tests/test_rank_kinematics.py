"""Flexion angles from hand-made marker positions whose angles are known."""

import numpy as np
import pandas as pd
import pytest

from sonolabel import InputError
from sonolabel.rank import MARKERS, flex_labels, joint_angle, total_flexion_from_markers


def test_joint_angle_known_values():
    u = np.array([[1.0, 0, 0]] * 4)
    v = np.array([[1.0, 0, 0], [0, 1.0, 0], [-1.0, 0, 0], [1.0, 1.0, 0]])
    assert joint_angle(u, v) == pytest.approx([0, 90, 180, 45])


def _hand(mp: float, pip: float, thumb_out: float, thumb_ip: float) -> dict:
    """A hand with its palm in the x-y plane (normal +z); every joint flexes towards +z by the given angles."""
    z = np.array([0, 0, 1.0])
    m = {"wrist": np.zeros(3)}
    for i, f in enumerate(("index", "middle", "ring", "little")):
        mcp = np.array([2.0 - i, 8.0, 0])
        d = mcp / np.linalg.norm(mcp)  # the metacarpal's direction
        a, b = np.radians(mp), np.radians(mp + pip)
        pipp = mcp + 4 * (np.cos(a) * d + np.sin(a) * z)
        m.update({f"{f}_mcp": mcp, f"{f}_pip": pipp, f"{f}_dip": pipp + 3 * (np.cos(b) * d + np.sin(b) * z)})
    x = np.array([1.0, 0, 0])
    t, u = np.radians(thumb_out), np.radians(thumb_out + thumb_ip)
    tm = np.array([3.0, 2.0, 0])
    ip = tm + 3 * (np.cos(t) * x + np.sin(t) * z)
    m.update({"thumb_mcp": tm, "thumb_ip": ip, "thumb_tip": ip + 2 * (np.cos(u) * x + np.sin(u) * z)})
    return m


def _table(hands: list[dict]) -> pd.DataFrame:
    rows = []
    for h in hands:
        rows.append({f"{k}_{a}": float(np.asarray(h[k])[i]) for k in h for i, a in enumerate("xyz")})
    return pd.DataFrame(rows)


def test_total_flexion_from_markers_known_angles():
    hands = [_hand(0, 0, 0, 0), _hand(30, 45, 20, 10), _hand(60, 90, 40, 30)]
    theta = total_flexion_from_markers(_table(hands))
    assert list(theta.columns) == ["thumb", "index", "middle", "ring", "little"]
    np.testing.assert_allclose(theta["index"], [0, 75, 150], atol=1e-6)
    np.testing.assert_allclose(theta["little"], [0, 75, 150], atol=1e-6)
    np.testing.assert_allclose(theta["thumb"], [0, 30, 70], atol=1e-6)


def test_missing_marker_refused_and_flex_labels():
    with pytest.raises(InputError, match="index_pip"):
        total_flexion_from_markers(_table([_hand(0, 0, 0, 0)]).drop(columns=["index_pip_x"]))
    theta = pd.DataFrame({"thumb": [0, 10, 20], "index": [5, 50, 95], "middle": [0, 0, 1], "ring": [0, 1, 0], "little": [3, 3, 3]})
    labels = flex_labels(theta)  # thresholds at mid-range; a finger that moved under 10 deg never flexed
    assert labels[:, 1].tolist() == [0, 0, 1] and labels[:, 0].tolist() == [0, 0, 1]
    assert labels[:, 4].tolist() == [0, 0, 0] and labels[:, 2].tolist() == [0, 0, 0]
    assert set(MARKERS) >= {"wrist", "thumb_tip", "little_dip"}
