"""Export stage: a run -> one target's artifact folder (exporter.py), checked against PyTorch
(parity.py). The targets themselves live in ftedge/runtime/<runtime>/."""
