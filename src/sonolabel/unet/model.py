"""The segmentation network: an smp U-Net with its encoder chosen by name, and where encoder weights come from.

Encoder weights are never downloaded: none (random initialisation, the default), a local file
(``.safetensors`` or ``.pt`` state dict of the encoder, for 1 or 3 input channels), or
``imagenet`` when segmentation-models-pytorch's weights are already in the local Hugging Face
cache. Anything else fails at once with a message saying what to do.
"""

from __future__ import annotations

from pathlib import Path

import torch
import torch.nn.functional as F
from torch import nn

from .._compat import ensure_torchvision
from ..errors import InputError


class PaddedUNet(nn.Module):
    """A U-Net that takes any input size: pads to a multiple of 32 (the encoder's stride), crops the logits back."""

    def __init__(self, encoder: str, n_classes: int, in_channels: int = 1, decoder_attention: str | None = None):
        super().__init__()
        ensure_torchvision()
        import segmentation_models_pytorch as smp

        try:
            self.net = smp.Unet(encoder_name=encoder, encoder_weights=None, in_channels=3, classes=n_classes, decoder_attention_type=decoder_attention)
        except KeyError:
            raise InputError(f"unknown encoder {encoder!r}", hint="e.g. resnet18, resnet34, resnet50, efficientnet-b0") from None
        self.net.encoder.set_in_channels(in_channels, pretrained=False)
        self.in_channels = in_channels

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h, w = x.shape[-2:]
        ph, pw = (-h) % 32, (-w) % 32
        if ph or pw:
            x = F.pad(x, (pw // 2, pw - pw // 2, ph // 2, ph - ph // 2), mode="reflect" if min(h, w) > max(ph, pw) else "constant")
        out = self.net(x)
        return out[..., ph // 2 : ph // 2 + h, pw // 2 : pw // 2 + w]


def _cached_imagenet(encoder: str) -> str:
    import segmentation_models_pytorch as smp
    from huggingface_hub import try_to_load_from_cache

    settings = smp.encoders.encoders.get(encoder, {}).get("pretrained_settings", {}).get("imagenet")
    if settings is None:
        raise InputError(f"encoder {encoder!r} has no imagenet weights in segmentation-models-pytorch")
    found = try_to_load_from_cache(settings["repo_id"], "model.safetensors", revision=settings["revision"])
    if not isinstance(found, str):
        raise InputError(
            f"imagenet weights for {encoder} are not in the local cache (sonolabel never downloads them)",
            hint="set encoder_weights to a local .safetensors/.pt file of the encoder, or to none",
        )
    return found


def _read_state_dict(path: Path) -> dict[str, torch.Tensor]:
    if not path.is_file():
        raise InputError("no such encoder weights file", path, "give a local .safetensors or .pt file, imagenet, or none")
    try:
        if path.suffix == ".safetensors":
            from safetensors.torch import load_file

            state = load_file(str(path), device="cpu")
        else:
            state = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as e:  # noqa: BLE001
        raise InputError(f"cannot read encoder weights ({type(e).__name__})", path, "give a state dict of tensors (.safetensors or a plain .pt)") from None
    if isinstance(state, dict) and "state_dict" in state:
        state = state["state_dict"]
    if not isinstance(state, dict) or not all(isinstance(v, torch.Tensor) for v in state.values()):
        raise InputError("encoder weights must be a state dict of tensors", path)
    return {k.removeprefix("encoder."): v for k, v in state.items()}


def load_encoder_weights(model: PaddedUNet, weights: str | None, encoder: str) -> str:
    """Put ``weights`` (none, imagenet, or a file path) into the encoder; returns where they came from."""
    if weights in (None, "", "none"):
        return "none"
    path = Path(_cached_imagenet(encoder)) if weights == "imagenet" else Path(weights)
    state = _read_state_dict(path)
    enc = model.net.encoder
    stem = next(name for name, m in enc.named_modules() if isinstance(m, nn.Conv2d)) + ".weight"
    w = state.get(stem)
    if w is not None and w.ndim == 4 and w.shape[1] != model.in_channels:
        if model.in_channels != 1:
            raise InputError(f"weights take {w.shape[1]} input channels, the model {model.in_channels}", path)
        state[stem] = w.sum(1, keepdim=True)  # an RGB stem folded to one channel, as smp does for pretrained weights
    state = {k: v for k, v in state.items() if not k.startswith("fc.")}  # classifier heads of whole-network files
    missing, unexpected = nn.Module.load_state_dict(enc, state, strict=False)
    if len(state) == len(unexpected) or len(missing) > len(state) // 2:
        raise InputError(f"weights do not fit encoder {encoder} ({len(missing)} missing, {len(unexpected)} unexpected tensors)", path)
    return str(path) if weights != "imagenet" else f"imagenet ({path})"
