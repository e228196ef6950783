"""TensorRT: runner (runner.py), export target (target.py) and the off-device build plan (plan.py)."""
