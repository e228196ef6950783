"""Calibration recipes, installed as the package data module ftedge.recipes (see setup.py)."""
