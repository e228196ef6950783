import pytest

from ftedge.config import (TrainConfig, TuneConfig, build_tune_config, from_dict, nest_overrides,
                           resolve_bn_frozen, to_dict)
from ftedge.errors import ConfigError


def test_defaults_round_trip_through_dict():
    cfg = TuneConfig()
    assert from_dict(TuneConfig, to_dict(cfg)) == cfg


def test_unknown_key_names_valid_keys(tmp_path):
    p = tmp_path / "c.yaml"
    p.write_text("train:\n  epoch: 3\n")
    with pytest.raises(ConfigError) as e:
        build_tune_config(str(p))
    assert "train" in str(e.value) and "epoch" in str(e.value) and "epochs" in e.value.hint


@pytest.mark.parametrize("section,value,want", [
    ("train", {"batch_size": "32"}, "a whole number"),
    ("train", {"batch_size": True}, "true/false are not numbers"),
    ("train", {"lr": "fast"}, "a number"),
    ("train", 5, "keys under it"),
])
def test_wrong_type_is_an_error_that_says_what_to_write(section, value, want):
    with pytest.raises(ConfigError, match=f"{section}") as e:
        from_dict(TuneConfig, {section: value}, "config")
    assert want in e.value.hint


def test_a_fifo_or_a_device_as_config_is_refused_without_blocking(tmp_path):
    import os

    from ftedge.config import load_yaml

    os.mkfifo(tmp_path / "config.yaml")  # nobody writes it: reading would wait forever
    for path in (tmp_path / "config.yaml", "/dev/zero"):
        with pytest.raises(ConfigError, match="not a regular file"):
            load_yaml(path)


def test_int_accepted_for_float_and_lists_for_tuples():
    cfg = from_dict(TuneConfig, {"train": {"lr": 1}, "augment": {"scale": [0.5, 1]}})
    assert cfg.train.lr == 1.0 and cfg.augment.scale == (0.5, 1.0)


def test_exponent_floats_as_pyyaml_reads_them(tmp_path):
    path = tmp_path / "c.yaml"
    path.write_text("train:\n  lr: 3e-4\nqat:\n  lr: 1E-5\n")  # YAML 1.1: strings, not floats
    cfg = build_tune_config(str(path))
    assert cfg.train.lr == 3e-4 and cfg.qat.lr == 1e-5
    for bad in ("3e", "e-4", "fast", "1e999"):
        with pytest.raises(ConfigError, match="train.lr must be"):
            from_dict(TuneConfig, {"train": {"lr": bad}})
    with pytest.raises(ConfigError, match="batch_size must be int"):
        from_dict(TuneConfig, {"train": {"batch_size": "3e1"}})


def test_flags_override_yaml(tmp_path):
    p = tmp_path / "c.yaml"
    p.write_text("train:\n  epochs: 3\n  lr: 0.5\nmodel:\n  name: mobilenet_v2\n")
    cfg = build_tune_config(str(p), nest_overrides({"epochs": 7, "lr": None}))
    assert cfg.train.epochs == 7 and cfg.train.lr == 0.5 and cfg.model.name == "mobilenet_v2"


def test_range_checks():
    with pytest.raises(ConfigError, match="head_epochs"):
        build_tune_config(None, {"train": {"epochs": 2, "head_epochs": 3}})
    with pytest.raises(ConfigError, match="optimizer"):
        build_tune_config(None, {"train": {"optimizer": "lamb"}})


def test_unknown_flat_option():
    with pytest.raises(ConfigError, match="unknown option"):
        nest_overrides({"epoch": 1})


def test_bn_freeze_rule():
    assert resolve_bn_frozen("auto", 8, True, train_images=50_000)  # small batches
    assert resolve_bn_frozen("auto", 32, True,
                             train_images=1_000)  # small sets: measured on real photos
    assert not resolve_bn_frozen("auto", 32, True, train_images=50_000)
    assert not resolve_bn_frozen("auto", 8, False, train_images=100)  # from scratch: BN must learn
    assert resolve_bn_frozen("freeze", 64, False, train_images=10**6)
    assert not resolve_bn_frozen("train", 2, True, train_images=10)
    assert TrainConfig().bn == "auto"


def test_epochs_from_the_dataset_size_unless_given():
    from ftedge.config import (DEFAULT_EPOCHS, MAX_AUTO_EPOCHS, MIN_STEPS, resolve_epochs,
                               resolve_patience)

    assert TrainConfig().epochs is None
    assert resolve_epochs(None, 34) == DEFAULT_EPOCHS  # 1,088 images at batch 32: 510 steps
    assert resolve_epochs(None, 6) == 40 and 40 * 6 >= MIN_STEPS  # 10 shots x 17 classes
    assert resolve_epochs(None, 1) == MAX_AUTO_EPOCHS
    assert resolve_epochs(7, 1) == 7  # a given number is kept exactly
    assert resolve_patience(5, None, 40) == 14 and resolve_patience(5, None, 15) == 5
    assert resolve_patience(5, 40, 40) == 5 and resolve_patience(0, None, 40) == 0
    assert build_tune_config(None, {"train": {"epochs": None}}).train.epochs is None
    with pytest.raises(ConfigError, match="epochs"):
        build_tune_config(None, {"train": {"epochs": 0}})
    with pytest.raises(ConfigError, match="head_epochs"):
        build_tune_config(None, {"train": {"head_epochs": DEFAULT_EPOCHS + 1}})


def test_qat_epochs_from_the_dataset_size_unless_given():
    from ftedge.config import (MAX_AUTO_EPOCHS, QAT_DEFAULT_EPOCHS, QAT_MIN_STEPS, QatConfig,
                               resolve_qat_epochs)

    assert QatConfig().epochs is None
    assert resolve_qat_epochs(None, 67) == QAT_DEFAULT_EPOCHS  # 2,144 images at batch 32
    assert resolve_qat_epochs(None, 34) == 6  # flowers17: 1,088 images
    assert resolve_qat_epochs(None, 6) == 34 and 34 * 6 >= QAT_MIN_STEPS > 33 * 6  # 10-shot
    assert resolve_qat_epochs(None, 1) == MAX_AUTO_EPOCHS
    assert resolve_qat_epochs(2, 1) == 2  # a given number is kept exactly
    with pytest.raises(ConfigError, match="qat.epochs"):
        build_tune_config(None, {"qat": {"epochs": 0}})


def test_a_word_for_an_optional_number_names_null():
    with pytest.raises(ConfigError, match="must be null or int") as e:
        build_tune_config(None, {"train": {"epochs": "auto"}})
    assert "null" in e.value.hint


BOMB = "".join(f"l{i}: &l{i} [" + ",".join([f"*l{i-1}" if i else '"lol"'] * 9) + "]\n"
               for i in range(9)) + "train: {epochs: *l8}\n"


@pytest.mark.parametrize("content,want", [
    (BOMB.encode(), "aliases"),
    (b"train: &t {epochs: 3}\nqat: *t\n", "aliases"),
    (bytes(range(256)) * 4, "not a text file"),
    (b"PK\x03\x04" + b"\x00" * 300, "not a text file"),  # a torch checkpoint is a zip
    (b"train:\n  epochs: 3\n" + b"#" * (1 << 20), "larger than 1 MiB"),
    (b"- 1\n- 2\n", "mapping at the top"),
    (b"train: [\n", "not valid YAML"),
])
def test_hostile_yaml_files_are_refused_fast(tmp_path, content, want):
    import time

    from ftedge.config import load_yaml

    path = tmp_path / "config.yaml"
    path.write_bytes(content)
    t0 = time.perf_counter()
    with pytest.raises(ConfigError, match=want) as e:
        build_tune_config(str(path))
    assert time.perf_counter() - t0 < 1 and str(path) in e.value.message
    assert len(str(e.value)) < 600  # the message never carries the expanded value
    with pytest.raises(ConfigError):
        load_yaml(path)


def test_a_folder_or_a_checkpoint_as_config(tmp_path):
    import torch

    torch.save({"w": torch.zeros(3)}, tmp_path / "best.pt")
    with pytest.raises(ConfigError, match="not a text file"):
        build_tune_config(str(tmp_path / "best.pt"))
    with pytest.raises(ConfigError, match="is a folder"):
        build_tune_config(str(tmp_path))


@pytest.mark.parametrize("section,key,value", [
    ("train", "seed", 99999999999999999999), ("train", "seed", -1),
    ("data", "split_seed", 2**40), ("train", "batch_size", 10**9), ("model", "img_size", 10**6),
    ("train", "epochs", 10**12), ("data", "workers", 10**6),
])
def test_numbers_beyond_what_the_libraries_take_are_config_errors(section, key, value):
    with pytest.raises(ConfigError, match=f"{section}.{key}"):
        build_tune_config(overrides={section: {key: value}})
