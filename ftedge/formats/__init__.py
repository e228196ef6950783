"""The on-disk formats, one owner each: every reader and writer goes through these modules.

- checkpoint.py: `best.pt` / `last.pt` / `qat_best.pt` (weights + the model's contract);
- run.py: the run folder (resolved config, split with data-root-relative paths, classes,
  contract, checkpoints, ONNX graphs);
- artifact.py: an artifact folder's manifest.json (typed, versioned, digest-covered);
- report.py: bench report.json (schema ftedge-bench/1) and merged reports;
- owned.py: the marker by which ftedge recognises folders it wrote itself, and the staging
  that makes a folder appear complete or not at all.
"""
