"""Training-ready datasets: export from a project, splits, and PyTorch datasets that read them."""

from .dataset import ExportedDataset
from .splits import loso_folds, make_splits, read_splits, train_val_split
from .writer import ExportConfig, export_dataset, resize_images, resize_labels

__all__ = ["ExportedDataset", "ExportConfig", "export_dataset", "resize_images", "resize_labels", "make_splits", "read_splits", "train_val_split", "loso_folds"]
