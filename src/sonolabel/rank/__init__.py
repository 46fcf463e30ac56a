"""SonoRank: finger flexion from forearm ultrasound (kinematics so far; the model is to come)."""

from .kinematics import MARKERS, flex_labels, joint_angle, total_flexion_from_markers

__all__ = ["MARKERS", "joint_angle", "total_flexion_from_markers", "flex_labels"]
