"""The segmentation U-Net: model, training on exported datasets, metrics, leave-one-subject-out, and
predictions back into a project. Built on the shared kit in :mod:`sonolabel.training`."""

from .loso import train_loso
from .metrics import confusion_matrix, metrics_table
from .predict import predict_project, predict_video
from .train import UNetConfig, train_unet

__all__ = ["UNetConfig", "train_unet", "train_loso", "predict_project", "predict_video", "confusion_matrix", "metrics_table"]
