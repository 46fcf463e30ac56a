"""Memory-attention propagation of keyframe labels to every frame (XMem++-style, class-agnostic values)."""

from .config import PropagationConfig
from .engine import Engine, Pass
from .propagate import PropagationReport, Segment, plan_segments, propagate_steps, propagate_video

__all__ = ["PropagationConfig", "Engine", "Pass", "propagate_video", "propagate_steps", "plan_segments", "Segment", "PropagationReport"]
