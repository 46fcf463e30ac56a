"""Make ``import torchvision`` work when its compiled operators cannot load.

The only torchvision 0.28 wheel on the package registry is a CUDA build; its ``_C`` library
fails to load on the CPU build of torch 2.13, and torchvision's import then dies registering
fake kernels for ``torchvision::nms``/``qnms``, which never got defined. sonolabel uses
torchvision only through segmentation-models-pytorch's encoders (plain convolutions), so it is
enough to define the two operator schemas. Nothing changes where a matching build loads.
"""

from __future__ import annotations

import glob
import importlib.util
import os

_SCHEMAS = {
    "nms": "(Tensor dets, Tensor scores, float iou_threshold) -> Tensor",
    "qnms": "(Tensor dets, Tensor scores, float iou_threshold) -> Tensor",
}
_state: dict[str, object] = {}


def _compiled_ops_load() -> bool:
    """Try to load torchvision's compiled library without importing torchvision itself."""
    import torch

    spec = importlib.util.find_spec("torchvision")
    if spec is None or not spec.submodule_search_locations:
        return False
    for lib in glob.glob(os.path.join(list(spec.submodule_search_locations)[0], "_C*.so")):
        try:
            torch.ops.load_library(lib)
            return True
        except (OSError, RuntimeError):
            return False
    return False


def ensure_torchvision() -> str:
    """Prepare torchvision for import; returns ``"native"``, ``"shimmed"`` or ``"absent"``.

    Call before anything imports torchvision (segmentation-models-pytorch does). Idempotent.
    """
    if "mode" in _state:
        return _state["mode"]  # type: ignore[return-value]
    import torch

    if importlib.util.find_spec("torchvision") is None:
        mode = "absent"
    elif _compiled_ops_load():
        mode = "native"
    else:
        for name, schema in _SCHEMAS.items():
            try:
                torch.library.define(f"torchvision::{name}", schema)
            except RuntimeError:  # already defined (a second library instance)
                pass
        mode = "shimmed"
    _state["mode"] = mode
    return mode
