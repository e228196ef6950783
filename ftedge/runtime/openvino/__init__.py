"""OpenVINO: runner (runner.py) and export target (target.py)."""
