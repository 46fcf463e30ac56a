"""The docs show what the tool looks like: every screenshot a page links exists and is not blank."""

import re
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

DOCS = Path(__file__).resolve().parents[1] / "docs"


@pytest.mark.parametrize("page", ["napari.md"])
def test_every_screenshot_a_page_shows_exists_and_is_not_blank(page):
    links = re.findall(r"!\[[^\]]*\]\(([^)]+)\)", (DOCS / page).read_text())
    assert len(links) >= 9  # the walkthrough, the dock, the timeline, the overlay and the review dock
    for link in links:
        path = DOCS / link
        assert path.exists(), f"{page} shows {link}, which is missing: run xvfb-run -a python docs/screenshots.py"
        img = np.asarray(Image.open(path).convert("RGB"), float)
        assert min(img.shape[:2]) >= 40, f"{link} is {img.shape[1]}x{img.shape[0]}"
        assert img.std() > 10 and len(np.unique(img.reshape(-1, 3)[::7], axis=0)) > 5, f"{link} looks blank"  # more than a flat fill


def test_the_screenshot_script_covers_every_image_the_page_shows():
    shown = {Path(link).name for link in re.findall(r"!\[[^\]]*\]\(images/([^)]+)\)", (DOCS / "napari.md").read_text())}
    script = (DOCS / "screenshots.py").read_text()
    assert all(f'"{name}"' in script for name in shown), sorted(n for n in shown if f'"{n}"' not in script)
