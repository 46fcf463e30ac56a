"""The quickstart example runs as written: the whole library API from a recording to a trained model."""

import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def test_quickstart_runs_end_to_end(tmp_path):
    r = subprocess.run([sys.executable, str(ROOT / "examples" / "quickstart.py"), str(tmp_path)], cwd=ROOT, capture_output=True, text=True, timeout=600)
    assert r.returncode == 0, r.stderr[-3000:]
    assert "propagated 120 frames" in r.stdout and "predicted 120 frames" in r.stdout, r.stdout
    assert (tmp_path / "unet" / "best.pt").is_file() and (tmp_path / "dataset" / "splits.json").is_file()
