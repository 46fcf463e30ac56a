"""SonoRank: which fingers flex, from forearm ultrasound windows, without per-user calibration.

Kinematics (:mod:`.kinematics`), the network (:mod:`.model`), windows and pairs of an exported
dataset (:mod:`.data`), targets, losses and scores (:mod:`.objectives`), training (:mod:`.train`),
leave-one-subject-out evaluation (:mod:`.loso`) and sliding-window inference (:mod:`.infer`).
"""

from ..kinematics import MARKERS, flex_labels, flexion_from_table, joint_angle, total_flexion_from_markers
from .model import ArchConfig, SonoRank, count_parameters
from .config import RankConfig
from .train import load_rank_model, train_rank

__all__ = [
    "MARKERS",
    "joint_angle",
    "total_flexion_from_markers",
    "flexion_from_table",
    "flex_labels",
    "ArchConfig",
    "SonoRank",
    "count_parameters",
    "RankConfig",
    "train_rank",
    "load_rank_model",
]
