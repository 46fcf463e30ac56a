"""Trainers over exported datasets: the segmentation U-Net (and its predictions back into a project)."""

from .checkpoint import load_checkpoint, save_checkpoint
from .loso import train_loso
from .metrics import confusion_matrix, metrics_table
from .predict import predict_project, predict_video
from .unet import UNetConfig, train_unet

__all__ = ["UNetConfig", "train_unet", "train_loso", "predict_project", "predict_video", "load_checkpoint",
           "save_checkpoint", "confusion_matrix", "metrics_table"]
