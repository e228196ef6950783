import json

import numpy as np
import pytest
import torch

import ftedge
from ftedge.errors import ConfigError, RunError
from ftedge.training.checkpoint import load_checkpoint
from tests.conftest import tiny_options, write_class_folders


@pytest.fixture(scope="module")
def finished_run(tmp_path_factory):
    root = tmp_path_factory.mktemp("finished")
    data = write_class_folders(root / "colours", per_class=12)
    return ftedge.tune(data=str(data), **tiny_options(root))


def test_tune_writes_a_complete_run(finished_run):
    run = finished_run.run_dir
    for name in ("config.yaml", "classes.json", "split.json", "metrics.csv", "metrics.json",
                 "training_curves.png", "confusion_matrix.png", "best.pt", "last.pt",
                 "summary.json", "val_report.json", "dataset_audit.json"):
        assert (run / name).is_file(), name
    assert not list(run.glob(".*.tmp"))
    history = json.loads((run / "metrics.json").read_text())
    assert [h["phase"] for h in history] == ["head", "full", "full", "full"]
    assert (run / "metrics.csv").read_text().splitlines()[0].startswith("epoch,phase,lr")
    split = json.loads((run / "split.json").read_text())
    assert split["source"] == "stratified" and len(split["val"]) == 6
    # the pre-check searched for duplicates and found none: no leak figures
    assert json.loads((run / "dataset_audit.json").read_text())["duplicates"] == []
    assert json.loads((run / "summary.json").read_text())["val_leak"] is None


def test_the_colour_task_is_learned(finished_run):
    assert finished_run.best_top1 == 1.0  # trivially separable: anything less is a bug


def test_checkpoint_loads_weights_only_and_carries_the_contract(finished_run):
    ckpt = torch.load(finished_run.run_dir / "best.pt", weights_only=True)
    assert ckpt["model_name"] == "efficientnet_lite0"
    assert ckpt["classes"] == ["blue", "green", "red"]
    pre = ckpt["preprocessing"]
    assert pre["input_size"] == [3, 32, 32] and pre["channel_order"] == "RGB"
    assert {"resize", "crop", "mean", "std", "layout"} <= set(pre)


def test_eval_and_predict(finished_run):
    colour_data = finished_run.run_dir.parent / "colours"
    rep = ftedge.evaluate(finished_run.run_dir)
    assert rep["top1"] == pytest.approx(finished_run.best_top1)
    assert rep["top5"] == 1.0 and set(rep["per_class"]) == {"blue", "green", "red"}
    assert sum(map(sum, rep["confusion_matrix"])) == 6
    out = ftedge.predict(finished_run.run_dir, [colour_data / "red" / "000.png",
                                                colour_data / "nope.png"], topk=2)
    assert out[0]["top"][0]["class"] == "red" and len(out[0]["top"]) == 2
    assert "error" in out[1]


def test_existing_run_folder_is_never_overwritten(finished_run, colour_data):
    with pytest.raises(RunError, match="already exists: a finished run") as e:
        ftedge.tune(data=str(colour_data), **tiny_options(finished_run.run_dir.parent))
    assert "another --out" in e.value.hint and "ftedge export" in e.value.hint


def test_resume_gives_the_same_result_as_an_uninterrupted_run(colour_data, tiny_tune_options,
                                                               tmp_path):
    opts = tiny_tune_options
    full = ftedge.tune(data=str(colour_data), **dict(opts, out=str(tmp_path / "full")))

    def crash_after_epoch_2(row):
        if row["epoch"] == 2:
            raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        ftedge.tune(data=str(colour_data), callbacks=[crash_after_epoch_2],
                    **dict(opts, out=str(tmp_path / "cut")))
    assert load_checkpoint(tmp_path / "cut" / "last.pt")["epoch"] == 2
    resumed = ftedge.tune(resume=tmp_path / "cut")
    assert resumed.epochs_run == 4
    a = load_checkpoint(tmp_path / "full" / "last.pt")["model_state"]
    b = load_checkpoint(tmp_path / "cut" / "last.pt")["model_state"]
    for k in a:
        assert torch.equal(a[k], b[k]), k
    for ha, hb in zip(full.history, resumed.history):
        assert ha["train_loss"] == hb["train_loss"] and ha["val_top1"] == hb["val_top1"]


def test_resume_refuses_new_options(tmp_path):
    with pytest.raises(ConfigError, match="saved config"):
        ftedge.tune(resume=tmp_path, epochs=3)


def test_early_stopping(colour_data, tiny_tune_options):
    res = ftedge.tune(data=str(colour_data), **dict(tiny_tune_options, epochs=12, patience=1))
    assert res.stopped_early and res.epochs_run < 12


def test_yaml_config_and_resolved_copy(colour_data, tiny_tune_options, tmp_path):
    cfg = tmp_path / "c.yaml"
    cfg.write_text("train:\n  optimizer: sgd\n  label_smoothing: 0.0\naugment:\n  hflip: 0.0\n")
    opts = dict(tiny_tune_options, epochs=2)
    res = ftedge.tune(config_file=str(cfg), data=str(colour_data), **opts)
    import yaml

    saved = yaml.safe_load((res.run_dir / "config.yaml").read_text())
    assert saved["train"]["optimizer"] == "sgd" and saved["augment"]["hflip"] == 0.0
    assert saved["train"]["epochs"] == 2 and saved["model"]["name"] == "efficientnet_lite0"
    assert np.isfinite(res.history[-1]["train_loss"])
