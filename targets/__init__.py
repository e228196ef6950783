"""Device profiles, installed as the package data module ftedge.profiles (see setup.py)."""
