"""PyTorch: the FP32 reference runner on a run folder (runner.py)."""
