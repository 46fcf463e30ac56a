"""Keyboard shortcuts of the annotation dock, registered as napari actions (Alt combinations that
napari's own viewer and Labels keys leave free)."""

from __future__ import annotations

SHORTCUTS = {
    "sonolabel:previous_keyframe": ("Alt-Left", "Go to the previous keyframe", lambda w: w.go_keyframe(-1)),
    "sonolabel:next_keyframe": ("Alt-Right", "Go to the next keyframe", lambda w: w.go_keyframe(+1)),
    "sonolabel:midpoint": ("Alt-M", "Go to the midpoint between the keyframes around this frame", lambda w: w.go_midpoint()),
    "sonolabel:next_suggested": ("Alt-N", "Go to the next suggested keyframe", lambda w: w.go_suggested()),
    "sonolabel:toggle_keyframe": ("Alt-K", "Mark or unmark this frame as a keyframe", lambda w: w.toggle_keyframe()),
}


def register_actions(widget) -> None:
    from napari.components import ViewerModel
    from napari.utils.action_manager import action_manager

    for name, (key, description, call) in SHORTCUTS.items():
        action_manager.register_action(name, lambda *_, call=call: call(widget), description, ViewerModel)
        action_manager.bind_shortcut(name, key)


def register_review_actions(widget) -> None:
    from napari.components import ViewerModel
    from napari.utils.action_manager import action_manager

    action_manager.register_action("sonolabel:next_flag", lambda *_: widget.go_next_flag(), "Go to the next pending drift flag", ViewerModel)
    action_manager.bind_shortcut("sonolabel:next_flag", "Alt-F")
