"""A forearm ultrasound phantom: realistic B-mode video with ground-truth labels and finger kinematics."""

from .kinematics import FINGERS, finger_kinematics
from .render import PhantomRenderer, PhantomSequence, make_sequence, phantom_box, screen_frame
from .project import phantom_project
from .writer import PhantomRecording, generate_phantom, read_manifest

__all__ = [
    "FINGERS",
    "finger_kinematics",
    "PhantomRenderer",
    "PhantomSequence",
    "make_sequence",
    "phantom_box",
    "screen_frame",
    "generate_phantom",
    "read_manifest",
    "PhantomRecording",
    "phantom_project",
]
