"""The model card from a fixture manifest: every fact where it belongs, user text escaped."""

from ftedge.render.card import (LATENCY_BEGIN, LATENCY_END, code, latency_section, md,
                                render_model_card, splice_latency)

CLASSES = ["daisy", "tulip|<b>red</b>", "a*b_c"]


def manifest(**over) -> dict:
    m = {"target": "onnxruntime-cpu", "runtime": "onnxruntime", "device": "cpu",
         "precision": "int8", "artifact": "model.onnx", "built": True, "opset": 17,
         "input_shape": ["dynamic", 3, 224, 224], "classes": CLASSES,
         "preprocessing": {"resize": 256, "input_size": [3, 224, 224], "mean": [0.485, 0.456, 0.406],
                           "std": [0.229, 0.224, 0.225]},
         "model_name": "efficientnet_lite0",
         "source": {"run": "/runs/f12", "kind": "qat", "onnx": "model.int8.onnx",
                    "onnx_sha256": "ab" * 32, "checkpoint": "qat_best.pt",
                    "gate": {"file": "gate.json", "passed": True, "drop_points": 0.52,
                             "max_drop_points": 1.0, "drop_ci95_points": [-0.31, 1.44],
                             "n": 384, "fp32_top1": 0.9844, "int8_top1": 0.9792}},
         "versions": {"ftedge": "0.9.0", "onnxruntime": "1.20.1", "torch": "2.14.1+cpu"},
         "parity": {"status": "checked", "passed": True, "reference": "PyTorch QAT fake-quant",
                    "n": 384, "top1_agreement": 0.9948, "artifact_top1": 0.9792},
         "calibration": {"method": "temperature", "temperature": 1.734, "n": 384,
                         "fitted_on": "val split", "ece_bins": 15, "ece_before": 0.0611,
                         "ece_after": 0.0143, "nll_before": 0.12, "nll_after": 0.071,
                         "heldout": "5-fold cross-fitting", "at_bound": False},
         "float_layers": [], "extra": {}, "created": "2026-12-06T16:00:00+0000"}
    m.update(over)
    return m


def facts(**over) -> dict:
    f = {"manifest": manifest(), "folder": "/runs/f12/exports/onnxruntime-cpu-int8",
         "data": {"counts": {"train": [40, 41, 42], "val": [10, 11, 12], "test": None},
                  "sha256": "cd" * 32, "covers": "every image's path, class and bytes",
                  "split": {"source": "folders", "root": "/data/f12"}},
         "metrics": {"n": 33, "top1": 0.9697, "of": "the artifact itself",
                     "per_class": {c: {"precision": 1.0, "recall": 0.9, "f1": 0.947368,
                                       "support": 10 + i} for i, c in enumerate(CLASSES)}}}
    f.update(over)
    return f


def test_card_states_each_fact_from_the_manifest():
    card = render_model_card(facts())
    assert "# Model card: `efficientnet_lite0` for onnxruntime-cpu (int8)" in card
    # classes and counts, escaped so a class cannot break the table or inject HTML
    assert "| tulip\\|\\<b\\>red\\</b\\> | 41 | 11 |" in card
    assert "| a\\*b\\_c | 42 | 12 |" in card and "| **total** | 123 | 33 |" in card
    assert "<b>" not in card
    assert "cd" * 32 in card and "the dataset's own train/val folders" in card
    assert "| daisy | 1.000 | 0.900 | 0.947 | 10 |" in card
    assert "+0.52 points, 95% interval -0.31 to +1.44 points; budget 1.00: passed" in card
    assert "T = 1.734" in card and "| ECE (15 bins) | 0.0611 | 0.0143 |" in card
    assert "| onnxruntime | 1.20.1 |" in card
    assert "one image is 0.26 points" in card  # 100 / 384
    assert "Not benchmarked yet: `ftedge bench /runs/f12/exports/onnxruntime-cpu-int8`" in card


def test_card_says_what_is_missing_and_how_to_make_it():
    m = manifest(precision="fp32", calibration=None, parity={"status": "skipped",
                                                              "reason": "no val split"})
    card = render_model_card(facts(manifest=m, data=None, metrics=None))
    assert "Not an INT8 artifact (fp32): no INT8 gate." in card
    assert "Not calibrated: probabilities are the softmax of the logits (T = 1)." in card
    assert "ftedge export /runs/f12 --target onnxruntime-cpu --precision fp32 --force" in card
    assert card.count("_Missing:") == 4  # data, metrics, calibration, unknown
    assert "It has no way to say \"none of these\"" in card


def test_card_known_limits_name_deepstream_and_vnni():
    m = manifest(parity={"status": "pending", "reason": "built on the device",
                         "deepstream_preprocessing": {"n": 384, "top1_exact_contract": 0.9792,
                                                      "top1_deepstream_style": 0.9401}},
                 built=False)
    card = render_model_card(facts(manifest=m, vnni="its INT8 weights use the full range"))
    assert "graph's val top-1 is 0.9401 against 0.9792 with the exact contract" in card
    assert "- Its INT8 weights use the full range." in card
    assert "built on the device by the first `ftedge export`" in card


def test_latency_section_is_spliced_in_place():
    card = render_model_card(facts())
    lat = {"hostname": "box", "cpu": "Xeon VNNI", "threads": None, "created": "now",
           "report": "/runs/f12/bench/box-1", "rows": [{"batch": 1, "p50_ms": 3.21,
                                                        "p99_ms": 4.5, "images_per_s": 300.0}],
           "end_to_end": {"p50_ms": 9.87, "p99_ms": 12.0}}
    new = splice_latency(card, latency_section(lat))
    assert "| 1 | 3.21 | 4.50 | 300.0 |" in new and "p50 9.87 ms" in new
    assert "Not benchmarked yet" not in new
    assert new.replace(latency_section(lat), "") == card.replace(latency_section(None,
        "ftedge bench /runs/f12/exports/onnxruntime-cpu-int8"), "")
    # a card whose markers were edited away is left alone
    assert splice_latency(card.replace(LATENCY_END, ""), latency_section(lat)) is None
    assert splice_latency(card + LATENCY_BEGIN, latency_section(lat)) is None


def test_markdown_escapes():
    assert md("a|b\nc<d>") == "a\\|b c\\<d\\>"
    assert code("x`y") == "``x`y``" and code("`x") == "`` `x ``"


def test_card_states_the_unknown_rule_and_its_val_rates():
    unknown = {"score": "mahalanobis", "output": "unknown_score", "higher_is_unknown": True,
               "threshold": 123.456, "target_tpr": 0.95, "measured_on": "the artifact in "
               "onnxruntime", "val": {"n": 384, "tpr": 0.9506, "top1_accepted": 0.9918,
                                      "top1_all": 0.9792}}
    card = render_model_card(facts(manifest=manifest(unknown=unknown)))
    assert "(mahalanobis, higher is more unknown): an image scoring above 123.456" in card
    assert "accepts 95.1% of 384 val images, whose top-1 is 0.9918 (all: 0.9792)" in card
    assert "ftedge eval ARTIFACT_FOLDER --unknown DIR" in card
    assert "no way to say" not in card
