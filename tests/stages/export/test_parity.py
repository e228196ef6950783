"""The INT8 parity rule: flips between classes tied within the quantization noise are allowed,
any other flip counts."""

import numpy as np

from ftedge.stages.export.parity import int8_agreement, quantization_noise


def _logits(n=200, classes=5, seed=0):
    """Reference logits with clear winners, except 10 images whose runner-up is 0.05 behind."""
    rng = np.random.default_rng(seed)
    ref = rng.normal(0, 1, (n, classes)).astype(np.float32)
    ref[np.arange(n), rng.integers(0, classes, n)] += 4.0
    top = ref.argmax(1)
    for i in range(10):
        ref[i, (top[i] + 1) % classes] = ref[i, top[i]] - 0.05
    return ref


def _swap_top2(logits, rows):
    out = logits.copy()
    for i in rows:
        a, b = np.argsort(out[i])[-2:]
        out[i, [a, b]] = out[i, [b, a]]
    return out


def test_flips_between_near_tied_classes_pass_where_exact_agreement_fails():
    ref = _logits()
    art = _swap_top2(ref, range(10))  # all 10 near-ties flip: 95% exact agreement
    a = int8_agreement(ref, art, noise=0.3)
    assert (ref.argmax(1) == art.argmax(1)).mean() == 0.95
    assert a["top1_agreement_within_noise"] == 1.0 and a["flips_beyond_noise"] == 0


def test_flips_of_firm_decisions_and_to_far_classes_count():
    ref = _logits()
    firm = _swap_top2(ref, range(100, 104))  # 4 images whose runner-up is far behind
    assert int8_agreement(ref, firm, noise=0.3)["flips_beyond_noise"] == 4
    far = ref.copy()  # near-tie images flipped to their LAST class: not a tie, counts
    for i in range(10):
        far[i, ref[i].argmin()] = ref[i].max() + 1
    a = int8_agreement(ref, far, noise=0.3)
    assert a["flips_beyond_noise"] == 10 and a["top1_agreement_within_noise"] == 0.95


def test_the_yardstick_comes_from_the_reference_never_the_artifact():
    ref = _logits()
    twin = ref + np.random.default_rng(1).normal(0, 0.2, ref.shape).astype(np.float32)
    noise = quantization_noise(ref, twin)
    assert abs(noise - np.abs(ref - twin).mean()) < 1e-6
    garbage = np.random.default_rng(2).normal(0, 50, ref.shape).astype(np.float32)
    bad = int8_agreement(ref, garbage, noise)
    assert bad["int8_noise_logit"] == noise and bad["top1_agreement_within_noise"] < 0.5


def test_nan_logits_and_one_class_models():
    ref = _logits()
    nan = ref.copy()
    nan[:5, 0] = np.nan  # np.argmax picks a NaN: without a check some rows would "agree"
    assert int8_agreement(ref, nan, 0.3)["flips_beyond_noise"] == 5
    strict = int8_agreement(ref, _swap_top2(ref, range(10)), float("nan"))
    assert strict["flips_beyond_noise"] == 10  # no yardstick: only exact agreement counts
    one = np.ones((4, 1), np.float32)
    assert int8_agreement(one, one, 0.0)["top1_agreement_within_noise"] == 1.0
