import subprocess
import sys


def test_torchvision_and_smp_import_after_compat():
    code = (
        "from sonolabel._compat import ensure_torchvision\n"
        "mode = ensure_torchvision()\n"
        "import torch, torchvision, segmentation_models_pytorch as smp\n"
        "m = smp.Unet('resnet34', encoder_weights=None, in_channels=1, classes=8)\n"
        "assert m(torch.zeros(1, 1, 64, 64)).shape == (1, 8, 64, 64)\n"
        "assert ensure_torchvision() == mode\n"
        "print(mode)\n"
    )
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=300)
    assert r.returncode == 0, r.stderr
    assert r.stdout.strip() in ("native", "shimmed")


def test_library_never_imports_gui_packages():
    code = (
        "import sys, sonolabel, sonolabel.store, sonolabel.io, sonolabel.quantize, sonolabel.phantom, sonolabel.masks, sonolabel.cli.main\n"
        "bad = [m for m in sys.modules if m.split('.')[0] in ('napari', 'qtpy', 'PyQt6', 'PyQt5', 'PySide6', 'magicgui', 'superqt')]\n"
        "assert not bad, bad\n"
    )
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert r.returncode == 0, r.stderr
