"""The shape of the code: import contracts (no GUI toolkit in the library; layers), lint, and a napari
manifest whose every command resolves."""

import importlib
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[1]


def _tool(name: str) -> str:
    exe = Path(sys.executable).parent / name
    found = str(exe) if exe.exists() else shutil.which(name)
    if not found:
        pytest.fail(f"{name} is not installed: pip install -e '.[dev]'")
    return found


def test_import_contracts_are_kept():
    r = subprocess.run([_tool("lint-imports")], cwd=ROOT, capture_output=True, text=True)
    assert r.returncode == 0 and "0 broken" in r.stdout, r.stdout[-3000:]


TREE = ["src", "napari_plugin", "tests", "benchmarks", "examples", "datasets", "docs"]


def test_ruff_finds_nothing_and_the_tree_is_formatted():
    r = subprocess.run([_tool("ruff"), "check", *TREE], cwd=ROOT, capture_output=True, text=True)
    assert r.returncode == 0, r.stdout[-3000:]
    r = subprocess.run([_tool("ruff"), "format", "--check", *TREE], cwd=ROOT, capture_output=True, text=True)
    assert r.returncode == 0, f"run `ruff format`: {r.stdout[-3000:]}"


def test_every_napari_manifest_command_resolves():
    """The installed plugin is the uniquely named package sonolabel_napari, napari finds its manifest through
    the entry point, and every command in it imports."""
    from importlib.metadata import entry_points
    from importlib.resources import files

    (point,) = [e for e in entry_points(group="napari.manifest") if e.name == "sonolabel"]
    package, _, resource = point.value.partition(":")
    assert package == "sonolabel_napari"
    manifest = yaml.safe_load(files(package).joinpath(resource).read_text())
    for command in manifest["contributions"]["commands"]:
        module, _, attr = command["python_name"].partition(":")
        assert callable(getattr(importlib.import_module(module), attr)), command["python_name"]
    for widget in manifest["contributions"]["widgets"]:  # napari adds "(sonolabel)" itself: never twice
        assert "sonolabel" not in widget["display_name"], widget["display_name"]


def test_only_the_store_touches_a_videos_zarr_group():
    """Columns, state and attributes go through Video's methods (store/layout.py registers every column)."""
    import re

    pattern = re.compile(r"\.group\b(?!\s*\()")  # attribute access, not a method called group()
    library = [p for p in (ROOT / "src" / "sonolabel").rglob("*.py") if "store" not in p.relative_to(ROOT / "src").parts]
    files = library + list((ROOT / "napari_plugin").rglob("*.py"))
    offenders = [f"{p.relative_to(ROOT)}:{i}" for p in files for i, line in enumerate(p.read_text().splitlines(), 1) if pattern.search(line)]
    assert not offenders, offenders
