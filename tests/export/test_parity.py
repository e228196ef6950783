"""The INT8 parity rule: near-ties may flip between correct INT8 runtimes, firm decisions may not."""

import numpy as np

from ftedge.export.parity import int8_agreement


def _logits(n=200, classes=5, seed=0):
    """FP32 logits with clear winners, the INT8 reference a little off them, and 10 near-ties."""
    rng = np.random.default_rng(seed)
    fp32 = rng.normal(0, 1, (n, classes)).astype(np.float32)
    fp32[np.arange(n), rng.integers(0, classes, n)] += 4.0
    ref = fp32 + rng.normal(0, 0.3, fp32.shape).astype(np.float32)
    top = ref.argmax(1)
    for i in range(10):  # the runner-up within 0.05 logits of the winner
        second = (top[i] + 1) % classes
        ref[i, second] = ref[i, top[i]] - 0.05
    return fp32, ref


def _swap_top2(logits, rows):
    out = logits.copy()
    for i in rows:
        a, b = np.argsort(out[i])[-2:]
        out[i, [a, b]] = out[i, [b, a]]
    return out


def test_flips_on_near_ties_pass_where_plain_agreement_fails():
    fp32, ref = _logits()
    art = _swap_top2(ref, range(10))  # all 10 near-ties flip: 95% plain agreement
    a = int8_agreement(ref, art, fp32)
    assert (ref.argmax(1) == art.argmax(1)).mean() == 0.95
    assert a["decisive_top1_agreement"] == 1.0 and a["decisive_disagreements"] == 0
    assert 150 <= a["decisive_images"] <= 190  # the near-ties and a few others are left out
    assert abs(a["int8_noise_logit"] - np.abs(ref - fp32).mean()) < 1e-6


def test_flips_on_firm_decisions_fail():
    fp32, ref = _logits()
    art = _swap_top2(ref, range(100, 104))  # 4 of ~180 decisive images: 97.8%
    a = int8_agreement(ref, art, fp32)
    assert a["decisive_disagreements"] == 4 and a["decisive_top1_agreement"] < 0.99


def test_a_broken_artifact_cannot_widen_the_yardstick():
    fp32, ref = _logits()
    garbage = np.random.default_rng(1).normal(0, 50, ref.shape).astype(np.float32)
    good, bad = int8_agreement(ref, ref, fp32), int8_agreement(ref, garbage, fp32)
    assert bad["int8_noise_logit"] == good["int8_noise_logit"]
    assert bad["decisive_images"] == good["decisive_images"]
    assert bad["decisive_top1_agreement"] < 0.5


def test_when_few_images_are_decisive_every_image_counts():
    fp32, ref = _logits()
    noisy = ref + np.random.default_rng(2).normal(0, 5, ref.shape).astype(np.float32)
    a = int8_agreement(noisy, _swap_top2(noisy, range(10)), fp32)  # INT8 noise ~4 logits
    assert a["decisive_images"] == len(ref) and a["decisive_basis"].startswith("all images")
    assert a["decisive_top1_agreement"] == 0.95
