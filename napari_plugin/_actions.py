"""Keyboard shortcuts of the sonolabel docks, registered as napari actions (Alt combinations that napari's
own viewer and Labels keys leave free: napari's digits pick Labels modes, so classes take Alt-digits)."""

from __future__ import annotations

SHORTCUTS = {
    "sonolabel:previous_keyframe": ("Alt-Left", "Go to the previous keyframe", lambda w: w.go_keyframe(-1)),
    "sonolabel:next_keyframe": ("Alt-Right", "Go to the next keyframe", lambda w: w.go_keyframe(+1)),
    "sonolabel:midpoint": ("Alt-M", "Go to the midpoint between the keyframes around this frame", lambda w: w.go_midpoint()),
    "sonolabel:next_suggested": ("Alt-N", "Go to the next suggested keyframe", lambda w: w.go_suggested()),
    "sonolabel:toggle_keyframe": ("Alt-K", "Mark or unmark this frame as a keyframe", lambda w: w.toggle_keyframe()),
    "sonolabel:toggle_uncertainty": ("Alt-U", "Show or hide propagation's uncertainty overlay", lambda w: w.session.toggle_uncertainty()),
    "sonolabel:assist": ("Alt-C", "Click assist: scribble inside a structure with the selected class", lambda w: w.start_assist()),
    "sonolabel:draft": ("Alt-D", "Draft this frame from the video's keyframes or the subject's labelled recording", lambda w: w.draft()),
    "sonolabel:accept_fill": ("Alt-A", "Accept the proposal (click assist fill or draft)", lambda w: w.accept_assist()),
    "sonolabel:drop_fill": ("Alt-X", "Drop the proposal and the assist strokes", lambda w: w.assist.discard()),
}
CLASS_KEYS = [f"Alt-{i}" for i in range(10)]  # class i is painted after Alt-i
REVIEW_SHORTCUTS = {"sonolabel:next_flag": ("Alt-F", "Go to the next pending drift flag", lambda w: w.go_next_flag())}


def shortcut_of(action: str) -> str:
    return {**SHORTCUTS, **REVIEW_SHORTCUTS}[action][0]


def _register(widget, table: dict) -> None:
    from napari.components import ViewerModel
    from napari.utils.action_manager import action_manager

    for name, (key, description, call) in table.items():
        action_manager.register_action(name, lambda *_, call=call: call(widget), description, ViewerModel)
        action_manager.bind_shortcut(name, key)


def register_actions(widget) -> None:
    classes = {
        f"sonolabel:class_{i}": (key, f"Paint with class {i} of the project palette", lambda w, i=i: w.pick_class(i)) for i, key in enumerate(CLASS_KEYS)
    }
    _register(widget, {**SHORTCUTS, **classes})


def register_review_actions(widget) -> None:
    _register(widget, REVIEW_SHORTCUTS)
