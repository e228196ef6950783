"""ONNX Runtime: runner (runner.py) and export target (target.py)."""
