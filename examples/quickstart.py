"""The whole library API in one script: recordings in, keyframes, propagation, drift flags, a training
dataset, a trained U-Net, and its predictions back in the project. No downloads; about a minute on 2 cores.

Run: python examples/quickstart.py [OUT]
"""

import sys
import tempfile
from pathlib import Path

import numpy as np
import zarr

from sonolabel.export import ExportConfig, export_dataset
from sonolabel.io import import_recording
from sonolabel.phantom import generate_phantom, read_manifest
from sonolabel.pipeline import mean_iou, run_propagation
from sonolabel.review import ReviewLog, run_drift
from sonolabel.store import Project
from sonolabel.unet import UNetConfig, predict_project, train_unet

out = Path(sys.argv[1]) if len(sys.argv) > 1 else Path(tempfile.mkdtemp(prefix="sonolabel-quickstart-"))

# 1. Recordings: a phantom forearm with ground truth (yours: video, DICOM, TIFF stack, frame folder, HDF5, Clarius).
generate_phantom(out / "phantom", subjects=2, frames=60, seed=0)
truth = {}
with Project.create(out / "project.zarr") as project:
    for rec in read_manifest(out / "phantom"):
        vid = import_recording(project, out / "phantom" / rec.video, rec.subject, kinematics=out / "phantom" / rec.kinematics)
        truth[vid] = np.asarray(zarr.open_array(str(out / "phantom" / rec.labels), mode="r")[:])
        # 2. Keyframes: what an annotator paints in napari (here: the ground truth at both ends).
        for t in (0, 59):
            project.video(vid).save_annotation(t, truth[vid][t], who="quickstart")

    # 3. Propagation: every frame labelled from the keyframes, all classes in one pass.
    run_propagation(project, progress=False)
    k = len(project.palette)
    scores = [mean_iou(project.video(v).labels(t), truth[v][t], k) for v in truth for t in range(60)]
    print(f"propagated {len(scores)} frames: mean mIoU {np.mean(scores):.3f}, worst {np.min(scores):.3f}")

    # 4. Drift flags, and an expert's review: accept, correct or exclude each (who, when and why are kept).
    reports = run_drift(project)
    review = ReviewLog(project)
    for flag in review.queue("pending").to_dict("records"):
        review.record("accept", flag["video"], flag["start"], flag["stop"], who="expert", note="checked in napari")
    print(f"drift: {sum(r.flags for r in reports)} flags, accepted in review")

    # 5. A training dataset (zarr / OME-Zarr, subject splits, kinematics).
    dataset = export_dataset(project, out / "dataset", ExportConfig(size=64))

# 6. A U-Net trained on it (one epoch here), saved with its configuration.
run = train_unet(dataset, out / "unet", UNetConfig(epochs=1, encoder="resnet18", batch_size=8, workers=0, augment=False), progress=False)
print(f"U-Net: best epoch {run.best_epoch}, validation loss {run.best_val_loss:.3f}")

# 7. Its predictions and per-frame loss back in the project, where drift checks use them.
with Project.open(out / "project.zarr", "a") as project:
    predicted = predict_project(project, run.out / "best.pt")
print(f"predicted {sum(r.frames for r in predicted)} frames; everything is in {out}")
