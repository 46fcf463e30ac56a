"""U-Net training throughput: the real data loader against what the model consumes, on this machine.

    python benchmarks/unet_training.py [--frames 150] [--size 240] [--batches 20]

Measures, in one run on a phantom dataset (3 subjects) exported at ``--size``:
* model: images/s of training steps (ResNet34 U-Net, batch 10, forward + backward + Adam) on
  tensors already in memory;
* loader: images/s the DataLoader delivers (lazy zarr reads, augmentations on), with 0 and 2
  worker processes, and no model;
* end to end: images/s of `train_unet` itself (loader and model together).
The loader must deliver at least 3x what the model consumes. Results: benchmarks/results/unet_training.json.
"""

from __future__ import annotations

import argparse
import json
import platform
import tempfile
import time
from pathlib import Path

import torch

RESULTS = Path(__file__).parent / "results"


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--frames", type=int, default=150)
    ap.add_argument("--size", type=int, default=240)
    ap.add_argument("--batches", type=int, default=20)
    ap.add_argument("--device", default="cpu")
    args = ap.parse_args()

    from torch.utils.data import DataLoader

    from sonolabel.export import ExportConfig, export_dataset
    from sonolabel.export.torch_data import SegmentationFrames
    from sonolabel.phantom import generate_phantom, phantom_project
    from sonolabel.unet.train import UNetConfig, _augment, class_weight_tensor, train_unet
    from sonolabel.unet.model import PaddedUNet

    root = Path(tempfile.mkdtemp(prefix="unet-bench-"))
    generate_phantom(root / "ph", subjects=3, frames=args.frames, seed=0)
    with phantom_project(root / "ph", root / "p.zarr") as p:
        export_dataset(p, root / "ds", ExportConfig(size=args.size))
    cfg = UNetConfig(device=args.device)
    dev = torch.device(args.device)

    def loader_rate(workers: int) -> float:
        ds = SegmentationFrames(root / "ds", split="all", transform=_augment(cfg))
        loader = DataLoader(ds, batch_size=cfg.batch_size, shuffle=True, num_workers=workers)
        n, t0 = 0, None
        for i, (img, _) in enumerate(loader):
            if i == 1:
                t0, n = time.perf_counter(), 0  # after the first batch (worker start-up)
            n += len(img)
            if i == args.batches:
                break
        return n / (time.perf_counter() - t0)

    model = PaddedUNet("resnet34", 8).to(dev).train()
    opt = torch.optim.Adam(model.parameters(), lr=1e-5)
    w = class_weight_tensor(cfg, 8).to(dev)
    x = torch.rand(cfg.batch_size, 1, args.size, args.size, device=dev)
    y = torch.randint(0, 8, (cfg.batch_size, args.size, args.size), device=dev)
    steps = max(3, args.batches // 4)
    for i in range(steps + 1):
        if i == 1:
            if dev.type == "cuda":
                torch.cuda.synchronize()
            t0 = time.perf_counter()
        loss = torch.nn.functional.cross_entropy(model(x), y, weight=w)
        opt.zero_grad()
        loss.backward()
        opt.step()
    if dev.type == "cuda":
        torch.cuda.synchronize()
    model_rate = steps * cfg.batch_size / (time.perf_counter() - t0)
    loader0, loader2 = loader_rate(0), loader_rate(2)
    t0 = time.perf_counter()
    train_unet(root / "ds", root / "run", UNetConfig(epochs=1, steps_per_epoch=steps, device=args.device), progress=False)
    log = json.loads(json.dumps(__import__("pandas").read_csv(root / "run" / "log.csv").iloc[0].to_dict()))
    result = {
        "machine": f"{platform.machine()}, {torch.get_num_threads()} threads, {args.device}",
        "size": args.size,
        "batch": cfg.batch_size,
        "model_images_per_s": round(model_rate, 2),
        "loader_images_per_s_0_workers": round(loader0, 1),
        "loader_images_per_s_2_workers": round(loader2, 1),
        "loader_over_model": round(loader2 / model_rate, 1),
        "epoch_images_per_s_incl_validation": round(log["images"] / log["seconds"], 2),
        "parameters_millions": round(sum(p.numel() for p in model.parameters()) / 1e6, 2),
    }
    RESULTS.mkdir(exist_ok=True)
    name = "unet_training.json" if args.device == "cpu" else f"unet_training_{args.device}.json"
    (RESULTS / name).write_text(json.dumps(result, indent=1))
    print(json.dumps(result, indent=1))


if __name__ == "__main__":
    main()
