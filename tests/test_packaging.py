"""The wheel carries what the code reads at run time: target profiles, calibration recipes, configs."""

import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


@pytest.mark.slow
def test_wheel_ships_profiles_recipes_and_configs(tmp_path):
    proc = subprocess.run([sys.executable, "-m", "pip", "wheel", str(ROOT), "--no-deps",
                           "--no-build-isolation", "-w", str(tmp_path), "-q"],
                          capture_output=True, text=True, timeout=300)
    if proc.returncode != 0 and "No module named" in proc.stderr:
        pytest.skip(f"cannot build a wheel here: {proc.stderr.strip().splitlines()[-1]}")
    assert proc.returncode == 0, proc.stderr[-2000:]
    names = set(zipfile.ZipFile(next(tmp_path.glob("*.whl"))).namelist())
    for profile in (ROOT / "targets").glob("*.yaml"):
        assert f"ftedge/profiles/{profile.name}" in names
    for recipe in (ROOT / "calibration").glob("*.yaml"):
        assert f"ftedge/recipes/{recipe.name}" in names
    assert "ftedge/configs/demo.yaml" in names
    assert not [n for n in names if "__pycache__" in n]
