"""The frozen-feature linear probe: the baseline a fine-tune has to beat.

Same network, starting weights, resolution, preprocessing and train/val split as `ftedge
tune`; the pretrained network stays frozen and a multinomial logistic regression (scikit-learn,
features standardised, its regularisation chosen by 5-fold cross-validation on the training
split) is fitted on the pre-logit features, the input of the network's final Linear layer.
"""

from __future__ import annotations

import inspect
import time
from pathlib import Path

import numpy as np
import torch

from ftedge.config import TuneConfig, build_tune_config, nest_overrides
from ftedge.console import console
from ftedge.data.audit import audit_dataset
from ftedge.data.features import final_linear as _final_linear
from ftedge.data.features import pre_logit_features
from ftedge.data.folder import stratified_split
from ftedge.models import build_model
from ftedge.training.data_setup import run_contract


def fit_logistic(x: np.ndarray, y: np.ndarray, *, cs=np.logspace(-4, 2, 13), folds: int = 5):
    """Standardised multinomial logistic regression, C by stratified cross-validation."""
    from sklearn.linear_model import LogisticRegressionCV
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    fewest = int(np.bincount(y).min())
    if fewest < 2:
        from ftedge.errors import DatasetError

        raise DatasetError("the linear probe needs at least 2 training images per class "
                           f"(a class has {fewest})", "add images, or use head_init: random")
    folds = int(max(2, min(folds, fewest)))
    # C is chosen on accuracy with an L2 penalty, as before: scikit-learn 1.8 deprecated the
    # defaults this relied on (scoring becomes log-loss, l1_ratios=None an error in 1.10).
    options = dict(Cs=cs, cv=folds, max_iter=3000, n_jobs=1, scoring="accuracy")
    if "use_legacy_attributes" in inspect.signature(LogisticRegressionCV).parameters:
        options.update(l1_ratios=(0.0,), use_legacy_attributes=False)
    clf = make_pipeline(StandardScaler(), LogisticRegressionCV(**options))
    return clf.fit(x, y)


def chosen_c(clf) -> float:
    """The cross-validated C (a float in scikit-learn's new attributes, an array in the old)."""
    return float(np.ravel(clf[-1].C_)[0])


@torch.no_grad()
def init_head_from_probe(built, samples, contract: dict, *, n_classes: int,
                         features: np.ndarray | None = None) -> float:
    """Set the final Linear to the fitted linear probe (scaler folded in): fine-tuning then
    starts from the probe's accuracy instead of a random head whose large early gradients
    distort the pretrained features (LP-FT, Kumar et al. 2022). Returns the chosen C.
    `features`: the samples' pre-logit features when the caller has them (tune does)."""
    x = pre_logit_features(built, samples, contract) if features is None else features
    y = np.array([s.label for s in samples])
    clf = fit_logistic(x, y, cs=np.logspace(-4, 1, 6), folds=3)
    scaler, lr = clf[0], clf[-1]
    w = lr.coef_ / scaler.scale_
    b = lr.intercept_ - (lr.coef_ * scaler.mean_ / scaler.scale_).sum(1)
    if n_classes == 2:  # sklearn's binary model: one logit for class 1 against class 0
        w, b = np.concatenate([-w / 2, w / 2]), np.concatenate([-b / 2, b / 2])
    head = _final_linear(built)
    head.weight.copy_(torch.as_tensor(w, dtype=head.weight.dtype))
    head.bias.copy_(torch.as_tensor(b, dtype=head.bias.dtype))
    return chosen_c(clf)


def linear_probe(config: TuneConfig | None = None, **options) -> dict:
    """Fit and score the probe; options as for `ftedge.tune` (data, model, weights, img_size,
    data.val_fraction / split_seed pick the same val split as the fine-tune)."""
    cfg = config or build_tune_config(None, nest_overrides(options))
    t0 = time.perf_counter()
    audit = audit_dataset(Path(cfg.data.path), background=tuple(cfg.data.background))
    if audit.val is not None:
        train, val = audit.train, audit.val
    else:
        train, val = stratified_split(audit.train, cfg.data.val_fraction, cfg.data.split_seed)
    contract = run_contract(cfg)
    torch.manual_seed(cfg.train.seed)
    built = build_model(cfg.model.name, len(audit.classes), weights=cfg.model.weights)
    x_train = pre_logit_features(built, train, contract)
    x_val = pre_logit_features(built, val, contract)
    y_train = np.array([s.label for s in train])
    y_val = np.array([s.label for s in val])
    clf = fit_logistic(x_train, y_train)
    top1 = float((clf.predict(x_val) == y_val).mean())
    result = {"model": cfg.model.name, "weights": built.weights_note,
              "input_size": contract["input_size"], "features": int(x_train.shape[1]),
              "train_images": len(train), "val_images": len(val),
              "C": chosen_c(clf), "val_top1": top1,
              "seconds": round(time.perf_counter() - t0, 1)}
    console.print(f"linear probe ({cfg.model.name}, frozen {result['features']}-d features, "
                  f"C {result['C']:.3g}): val top-1 {top1:.4f} on {len(val)} images",
                  soft_wrap=True)
    return result
