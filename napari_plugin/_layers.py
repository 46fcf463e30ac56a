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


def uncertainty_colormap():
    """Transparent where propagation is sure, through amber to opaque magenta where two classes compete."""
    from napari.utils.colormaps import Colormap

    colors = [[0, 0, 0, 0], [1.0, 0.75, 0.0, 0.35], [1.0, 0.2, 0.6, 0.9]]
    return Colormap(colors, controls=[0.0, 0.3, 1.0], name="sonolabel uncertainty", display_name="uncertainty (1 - margin)")


def uncertainty_layer(video) -> tuple | None:
    """Propagation's per-pixel uncertainty, 1 - margin, read lazily on its key grid and laid over the frames
    (scaled, with each cell centred on the pixels it covers); None before the video is propagated."""
    data = video.lazy_uncertainty()
    if data is None:
        return None
    sy, sx = video.height / data.shape[1], video.width / data.shape[2]
    return data, {
        "name": "uncertainty",
        "colormap": uncertainty_colormap(),
        "contrast_limits": (0.0, 1.0),
        "scale": (1, sy, sx),
        "translate": (0, (sy - 1) / 2, (sx - 1) / 2),
        "blending": "translucent",
        "interpolation2d": "linear",
        "metadata": {"sonolabel_video": video.id},
    }
