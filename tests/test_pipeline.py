"""pipeline.py: the demo's composition. The stages it calls are tested where they live; the
whole demo trains for minutes on 1,797 images and is not run by the suite."""

from pathlib import Path
from types import SimpleNamespace

import yaml

from ftedge import pipeline


def test_the_demo_config_ships_and_trains_with_qat():
    cfg = yaml.safe_load(pipeline.demo_config_path().read_text())
    assert cfg["qat"]["enabled"] is True and cfg["model"]["name"] == "efficientnet_lite0"


def test_demo_tunes_exports_and_benches_in_order_and_writes_data_once(tmp_path, monkeypatch):
    calls = []
    run = SimpleNamespace(run_dir=tmp_path / "runs" / "demo")
    monkeypatch.setattr(pipeline, "tune", lambda **kw: calls.append(("tune", kw)) or run)
    monkeypatch.setattr(pipeline, "export_local_targets",
                        lambda r: calls.append(("export", r)) or ["a", "b"])
    monkeypatch.setattr(pipeline, "bench_exports",
                        lambda e: calls.append(("bench", e)) or ({"r": 1}, tmp_path / "rep"))
    monkeypatch.setattr(pipeline, "write_demo_data",
                        lambda d: calls.append(("data", Path(d))) or Path(d).mkdir(parents=True)
                        or (Path(d) / "0").mkdir())
    res = pipeline.demo(tmp_path / "runs" / "demo", epochs=1)
    data = tmp_path / "runs" / "demo-data" / "digits"
    assert [c[0] for c in calls] == ["data", "tune", "export", "bench"]
    assert calls[0][1] == data
    assert calls[1][1] == {"config_file": str(pipeline.demo_config_path()), "data": str(data),
                           "out": str(tmp_path / "runs" / "demo"), "epochs": 1}
    assert calls[2][1] == run.run_dir and calls[3][1] == ["a", "b"]
    assert res.run_dir == run.run_dir and res.report == {"r": 1} and res.exports == ["a", "b"]
    calls.clear()
    pipeline.demo(tmp_path / "runs" / "demo2")
    assert [c[0] for c in calls] == ["tune", "export", "bench"]  # the data is there already
