"""tune's pre-check: a val that leaks from train is warned about before training, and the
finished run reports val top-1 with and without the leaked images."""

import json
import shutil

import ftedge
from ftedge.console import console
from tests.conftest import tiny_options, write_class_folders


def test_tune_warns_and_reports_top1_without_leaked_val(tmp_path):
    root = tmp_path / "data"
    write_class_folders(root / "train", per_class=10, seed=0)
    write_class_folders(root / "val", per_class=4, seed=1)
    for cls in ("red", "green"):  # 2 val images per class that are train files, renamed
        for i in range(2):
            shutil.copyfile(root / "train" / cls / f"{i:03d}.png",
                            root / "val" / cls / f"leak{i}.png")
    with console.capture() as cap:
        result = ftedge.tune(data=str(root), **dict(tiny_options(tmp_path), epochs=2))
    out = cap.get()
    assert "warning: 4 of 16 val images also appear in train" in out
    assert out.index("also appear in train") < out.index("epoch   1")  # before training
    summary = json.loads((result.run_dir / "summary.json").read_text())
    leak = summary["val_leak"]
    assert leak["leaked_val_images"] == 4 and leak["val_images"] == 16
    rep = json.loads((result.run_dir / "val_report.json").read_text())
    assert abs(leak["val_top1"] - rep["top1"]) < 1e-9
    audit = json.loads((result.run_dir / "dataset_audit.json").read_text())
    names = sorted(p.rsplit("/", 1)[-1] for p in audit["leaks"]["val"])
    assert names == ["leak0.png", "leak0.png", "leak1.png", "leak1.png"]
    # the two figures count the same predictions: the 12 clean images' hits are among the 16
    n_ok, n_ok_clean = leak["val_top1"] * 16, leak["val_top1_without_leaked"] * 12
    assert abs(n_ok - round(n_ok)) < 1e-6 and abs(n_ok_clean - round(n_ok_clean)) < 1e-6
    assert 0 <= round(n_ok) - round(n_ok_clean) <= 4
    assert "without them" in out
