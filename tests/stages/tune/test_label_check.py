"""tune's label check before training: planted flipped labels are found from the pretrained
network's features, listed before the first epoch and recorded in the run's audit (what
`report --html` reads); data.label_check false leaves it out."""

import json
from pathlib import Path

import yaml

import ftedge
from ftedge.config import resolve_label_check
from ftedge.console import console
from tests.conftest import tiny_options, write_class_folders

# (class the image is put under, class it shows): red and blue pictures filed as green / red
PLANTED = (("red", "green", 0), ("red", "green", 1), ("blue", "red", 2))


def _planted_data(root: Path) -> dict[str, tuple[str, str]]:
    write_class_folders(root, per_class=12, seed=0)
    planted = {}
    for shows, filed, i in PLANTED:
        name = f"flipped_{shows}_{i}.png"
        (root / shows / f"{i:03d}.png").rename(root / filed / name)
        planted[name] = (filed, shows)
    return planted


def test_tune_lists_planted_label_errors_before_training(tmp_path):
    planted = _planted_data(tmp_path / "data")
    # the probe head shares the check's forward pass (one pass, two uses)
    config = tmp_path / "probe.yaml"
    config.write_text(yaml.safe_dump({"train": {"head_init": "probe"}}))
    opts = dict(tiny_options(tmp_path), epochs=1, data=str(tmp_path / "data"))
    del opts["label_check"]  # the default: on, as the network starts from ImageNet weights
    with console.capture() as cap:
        result = ftedge.tune(config_file=str(config), **opts)
    out = cap.get()
    audit = json.loads((result.run_dir / "dataset_audit.json").read_text())
    issues = audit["label_issues"]
    found = {Path(i["path"]).name: (i["given"], i["suggested"]) for i in issues}
    # every planted flip is flagged with the class it shows; at most one of the 33 clean
    # noisy 24 px images is (measured: one red one, p(given) 0.13, ranked third of four)
    assert set(planted) <= set(found)
    assert all(found[name] == planted[name] for name in planted)
    assert len(issues) <= len(planted) + 1
    assert all(0 <= i["label_quality"] < 0.5 for i in issues[:len(planted)])
    assert "head initialised from the linear probe" in out
    assert f"{len(issues)} suspected label error(s), most suspicious first:" in out
    assert out.index("suspected label error(s)") < out.index("epoch   1")  # before training
    assert "flipped_red_0.png: in green, looks like red" in out


def test_label_check_off(tmp_path):
    _planted_data(tmp_path / "data")
    opts = dict(tiny_options(tmp_path), epochs=1, data=str(tmp_path / "data"),
                label_check=False)
    with console.capture() as cap:
        result = ftedge.tune(**opts)
    audit = json.loads((result.run_dir / "dataset_audit.json").read_text())
    assert audit["label_issues"] is None  # not checked (the page says so), not "none found"
    assert "label check" not in cap.get()


def test_the_default_checks_only_pretrained_features():
    assert resolve_label_check(None, "imagenet") is True
    assert resolve_label_check(None, "/some/weights.pt") is True
    assert resolve_label_check(None, "none") is False  # random features say nothing
    assert resolve_label_check(False, "imagenet") is False
    assert resolve_label_check(True, "none") is True


def test_the_announcement_lists_the_worst_and_says_where_the_rest_are(tmp_path):
    from types import SimpleNamespace

    from ftedge.data.labels import LabelIssue
    from ftedge.stages.tune.label_check import SHOW, LabelCheck, announce
    from tests.data.test_audit_report import ROOT, _audit

    issues = [LabelIssue(ROOT / f"train/cat/{i}.png", "cat", "dog", 0.01 * i)
              for i in range(SHOW + 2)]
    trainer = SimpleNamespace(cfg=SimpleNamespace(model=SimpleNamespace(name="tinynet")),
                              data=SimpleNamespace(audit=_audit(label_issues=issues)),
                              run=tmp_path)
    with console.capture() as captured:
        announce(trainer, LabelCheck(images=36, seconds=2.4))
        announce(trainer, LabelCheck(images=6, seconds=0.0, skipped="2 images per class"))
    out = " ".join(captured.get().split())
    assert "label check (36 images, frozen tinynet features, 2 s" in out
    assert f"{SHOW + 2} suspected label error(s)" in out and "train/cat/9.png" in out
    assert "train/cat/10.png" not in out and "... and 2 more (all listed in" in out
    assert "label check skipped: 2 images per class" in out
