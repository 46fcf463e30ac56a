"""Sample data contribution: the bundled phantom clip with its ground-truth labels."""

from __future__ import annotations


def phantom_sample():
    import numpy as np
    import zarr

    from sonolabel.sample import sample_path
    from sonolabel.io import open_source
    from sonolabel.io.importer import Crop
    from sonolabel.palette import FOREARM
    from sonolabel.phantom import read_manifest

    from ._layers import label_colormap

    folder = sample_path()
    rec = read_manifest(folder)[0]
    box = Crop(*rec.crop)
    frames = np.stack([box.apply(f) for f in open_source(folder / rec.video).frames()])
    labels = np.asarray(zarr.open_array(str(folder / rec.labels), mode="r")[:])
    return [
        (frames, {"name": "phantom"}, "image"),
        (labels, {"name": "phantom labels", "colormap": label_colormap(FOREARM), "opacity": 0.5}, "labels"),
    ]
