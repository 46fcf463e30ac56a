"""Memory-attention propagation of keyframe labels to every frame (XMem++-style, class-agnostic values)."""

from .config import PropagationConfig
from .engine import Engine, Pass
from .propagate import PropagationReport, Segment, plan_segments, propagate_video

__all__ = ["PropagationConfig", "Engine", "Pass", "propagate_video", "plan_segments", "Segment", "PropagationReport"]
