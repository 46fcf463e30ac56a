"""Per-frame total finger flexion from joint-angle tables or motion-capture markers, and flex labels.

Three sources give ``theta = theta_MP + theta_PIP`` per finger (degrees), one row per frame:

* a table of total flexion: columns ``thumb``, ``index``, ``middle``, ``ring``, ``little``
  (what the phantom writes, and what the store keeps);
* a table of joint angles: columns ``<finger>_mp`` and ``<finger>_pip`` (summed; the thumb's
  ``thumb_ip`` is accepted for ``thumb_pip``);
* motion-capture markers: columns ``<marker>_x``, ``_y``, ``_z`` (below).

Angles: the flexion at a joint is the angle between the segment before it and the segment after
it, ``atan2(|u x v|, u . v)`` (0 deg when straight; stable near 0 and 180 where ``acos`` is not).
Total flexion per finger is ``theta_MP + theta_PIP``.

Marker names (3-D positions, one row per frame): ``wrist``; for index, middle, ring and little
``<finger>_mcp``, ``<finger>_pip``, ``<finger>_dip``; for the thumb ``thumb_mcp``, ``thumb_ip``,
``thumb_tip``. The palm plane is spanned by ``wrist``, ``index_mcp`` and ``little_mcp``.

* fingers: theta_MP at the MCP between wrist->MCP and MCP->PIP; theta_PIP at the PIP between
  MCP->PIP and PIP->DIP;
* thumb: theta_MP is the angle of the proximal phalanx (MCP->IP) out of the palm plane, towards
  the palm's normal (0 deg in the plane); theta_PIP is the IP angle between MCP->IP and IP->tip.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from .errors import InputError

FINGERS = ("thumb", "index", "middle", "ring", "little")  # the order of every per-finger column and output

LONG_FINGERS = ("index", "middle", "ring", "little")
MARKERS = ("wrist", "thumb_mcp", "thumb_ip", "thumb_tip", *(f"{f}_{j}" for f in LONG_FINGERS for j in ("mcp", "pip", "dip")))


def joint_angle(u: np.ndarray, v: np.ndarray) -> np.ndarray:
    """Angle in degrees between vectors ``u`` and ``v`` (..., 3)."""
    cross = np.linalg.norm(np.cross(u, v), axis=-1)
    return np.degrees(np.arctan2(cross, np.sum(u * v, axis=-1)))


def _xyz(markers: pd.DataFrame, name: str) -> np.ndarray:
    cols = [f"{name}_{a}" for a in "xyz"]
    missing = [c for c in cols if c not in markers]
    if missing:
        raise InputError(f"marker table lacks {missing}", hint=f"markers needed: {', '.join(MARKERS)} (columns <marker>_x/_y/_z)")
    return markers[cols].to_numpy(float)


def total_flexion_from_markers(markers: pd.DataFrame) -> pd.DataFrame:
    """Total flexion (deg) of the five fingers per frame from columns ``<marker>_x``, ``_y``, ``_z``."""
    p = {name: _xyz(markers, name) for name in MARKERS}
    out = {}
    normal = np.cross(p["index_mcp"] - p["wrist"], p["little_mcp"] - p["wrist"])
    normal /= np.linalg.norm(normal, axis=-1, keepdims=True)
    prox = p["thumb_ip"] - p["thumb_mcp"]
    out_of_plane = 90.0 - joint_angle(prox, normal)  # 0 in the palm plane, 90 along the normal
    out["thumb"] = out_of_plane + joint_angle(prox, p["thumb_tip"] - p["thumb_ip"])
    for f in LONG_FINGERS:
        mcp, pip, dip = p[f"{f}_mcp"], p[f"{f}_pip"], p[f"{f}_dip"]
        out[f] = joint_angle(mcp - p["wrist"], pip - mcp) + joint_angle(pip - mcp, dip - pip)
    return pd.DataFrame(out)[list(FINGERS)]


def flexion_from_table(table: pd.DataFrame) -> pd.DataFrame | None:
    """Total flexion of the five fingers from any of the three kinds of table, or None when the
    table holds none of them (other kinematics are kept as they are by the importer)."""
    cols = set(table.columns)
    if set(FINGERS) <= cols:
        return table[list(FINGERS)].astype(float)
    if all(f"{f}_mp" in cols and (f"{f}_pip" in cols or f == "thumb" and "thumb_ip" in cols) for f in FINGERS):
        pip = {f: f"{f}_pip" if f"{f}_pip" in cols else "thumb_ip" for f in FINGERS}
        return pd.DataFrame({f: table[f"{f}_mp"].astype(float) + table[pip[f]].astype(float) for f in FINGERS})
    if any(c.endswith(("_x", "_y", "_z")) and c[:-2] in MARKERS for c in cols):
        return total_flexion_from_markers(table)
    return None


def flex_labels(theta: pd.DataFrame | np.ndarray, fraction: float = 0.5, min_range: float = 10.0) -> np.ndarray:
    """1 where a finger's flexion is above ``min + fraction * (max - min)`` of its range in the session.

    A finger whose range in the session is under ``min_range`` degrees never flexed there: all 0
    (otherwise tremor around a flat line would be labelled flexion half the time)."""
    theta = np.asarray(theta, float)
    lo, hi = np.nanmin(theta, 0), np.nanmax(theta, 0)
    moved = (hi - lo) >= min_range
    return ((theta > lo + fraction * (hi - lo)) & moved).astype(np.int8)
