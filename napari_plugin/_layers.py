"""Layer data for napari from library objects."""

from __future__ import annotations

from sonolabel.palette import Palette


def label_colormap(palette: Palette) -> dict:
    """Colours for napari's DirectLabelColormap: background and unknown labels transparent."""
    colors = {None: "transparent", 0: "transparent"}
    colors.update({i: palette.hex(i) for i in range(1, len(palette))})
    return colors


def video_layers(video) -> list[tuple]:
    """An image layer and a labels layer for a project video, both read lazily from the store."""
    palette = video.project.palette
    return [
        (video.lazy_frames(), {"name": video.id, "metadata": {"sonolabel_video": video.id}}, "image"),
        (
            video.lazy_labels(),
            {"name": f"{video.id} labels", "colormap": label_colormap(palette), "opacity": 0.5, "metadata": {"sonolabel_classes": list(palette.names)}},
            "labels",
        ),
    ]
