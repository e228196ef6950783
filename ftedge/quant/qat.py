"""Quantization-aware training: fake quantization as TensorRT's explicit quantization wants it.

Every Conv2d and Linear gets
  - its weight fake-quantized symmetric per output channel, INT8 (a parametrization, so any
    forward, timm's TF-"same"-padding convolutions included, sees the quantized weight), and
  - its input fake-quantized symmetric per tensor, INT8, zero-point 0 (a forward pre-hook).
Activations other than ReLU/ReLU6 (hardswish, hardsigmoid, SiLU, ...) get their input
fake-quantized too, and squeeze-excite blocks their input and gate (see quantize_activations).
BatchNorm is folded into the convolutions first, so the exported graph needs no folding and
BatchNorm statistics cannot drift on a small dataset. The fake-quant modules are PyTorch's own
(torch.ao.quantization.FakeQuantize with its observers); the ONNX exporter turns each into a
QuantizeLinear/DequantizeLinear pair.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn
from torch.ao.quantization import (FakeQuantize, MovingAverageMinMaxObserver,
                                   MovingAveragePerChannelMinMaxObserver)
from torch.nn.utils import parametrize

from ftedge.config import WEIGHT_BITS, or_default
from ftedge.quant.fold import fold_batchnorm

QUANTIZED_TYPES = (nn.Conv2d, nn.Linear)
INPUT_QUANTIZER = "input_quantizer"
OUTPUT_QUANTIZER = "output_quantizer"


def activation_quantizer() -> FakeQuantize:
    """Symmetric per-tensor INT8, zero-point 0; running range averaged over batches."""
    return FakeQuantize(observer=MovingAverageMinMaxObserver, quant_min=-128, quant_max=127,
                        dtype=torch.qint8, qscheme=torch.per_tensor_symmetric,
                        averaging_constant=0.01)


class NarrowWeightObserver(MovingAveragePerChannelMinMaxObserver):
    """Per-channel symmetric scales that put weights on [-64, 64] (7 bits) of the INT8 range.

    x86 CPUs without VNNI multiply u8 activations by s8 weights with VPMADDUBSW, which adds
    pairs of products in 16 bits: 255 * 128 * 2 overflows, 255 * 64 * 2 does not. ONNX
    Runtime and OpenVINO both use that instruction there (measured here: a QAT
    EfficientNet-Lite0 at 99.4% top-1 ran at 20-26% in both). NNCF's "overflow fix" is the
    same idea. The values stay INT8 (-128..127 range, zero-point 0), so every runtime,
    TensorRT included, reads the same graph. Depthwise convolutions do not need it (see
    is_depthwise).
    """

    def __init__(self, levels: float = 63.5, **kwargs):
        super().__init__(**kwargs)
        self.levels = levels

    def _calculate_qparams(self, min_val, max_val):
        scale, zero_point = super()._calculate_qparams(min_val, max_val)
        return scale * ((self.quant_max - self.quant_min) / 2 / self.levels), zero_point


def weight_quantizer(bits: int = 8) -> FakeQuantize:
    """Symmetric per-output-channel INT8 from the current weights (averaging constant 1);
    `bits=7` keeps them within [-64, 64] (see NarrowWeightObserver)."""
    observer, extra = ((NarrowWeightObserver, {"levels": 63.5}) if bits == 7
                       else (MovingAveragePerChannelMinMaxObserver, {}))
    return FakeQuantize(observer=observer, quant_min=-128, quant_max=127, dtype=torch.qint8,
                        qscheme=torch.per_channel_symmetric, ch_axis=0, averaging_constant=1.0,
                        **extra)


def is_depthwise(m: nn.Module) -> bool:
    """A depthwise convolution (one input and one output channel per group).

    Its INT8 kernels widen each product to 32 bits instead of adding u8 x s8 pairs in 16
    bits, so full-range weights cannot saturate there: ONNX Runtime's MLAS
    (MlasConvSymDepthwiseKernelAvx2: vpmovzxbd/vpmovsxbd then vpmaddwd; qdwconv_avx2.cpp:
    16-bit widening with 32-bit products) and oneDNN's jit_uni_x8s8s32x_fwd_kernel
    compute_ker_dw (vpmaddwd on zero-extended sources). NNCF's overflow fix leaves them at
    full range too (checked with nncf 3.4.0 on MobileNetV2: depthwise weights reach +-127,
    every other convolution +-64).
    """
    return (isinstance(m, nn.Conv2d) and m.groups > 1
            and m.groups == m.in_channels == m.out_channels)


# The quantization record of QAT checkpoints and of INT8 graphs (QAT and PTQ) states the rule;
# in a QAT checkpoint its presence tells one made since depthwise weights got the full range.
DEPTHWISE_KEY = "depthwise_weights"
DEPTHWISE_RULE = {DEPTHWISE_KEY: "full int8 range: their kernels add no 16-bit pair sums"}


def layer_weight_bits(m: nn.Module, weight_bits: int, narrow_depthwise: bool = False) -> int:
    """The weight bits of one layer: `weight_bits` (7 or 8), but 8 for depthwise convolutions,
    whose kernels cannot saturate, unless `narrow_depthwise` (runs made before that rule)."""
    return 8 if is_depthwise(m) and not narrow_depthwise else weight_bits


def _quantize_input(module: nn.Module, args):
    return (getattr(module, INPUT_QUANTIZER)(args[0]), *args[1:])


RESIDUAL_FLAGS = ("has_skip", "use_res_connect")  # timm's and torchvision's residual blocks


def _quantize_block_input(block: nn.Module, args):
    return (block._ftedge_shortcut_quantizer(args[0]), *args[1:])


def _quantize_output(module: nn.Module, args, output):
    return getattr(module, OUTPUT_QUANTIZER)(output)


def quantize_residual_shortcuts(model: nn.Module) -> int:
    """Put both inputs of every residual Add on INT8.

    The block input is both the first convolution's input and the shortcut of the Add;
    quantizing it once, with the first layer's quantizer, puts Q/DQ on the shortcut as
    TensorRT's explicit quantization wants. The other input, the output of the block's last
    convolution (BatchNorm already folded into it), gets its own quantizer: then the Add runs
    on integers in every runtime (ONNX Runtime fuses it into QLinearConv + QLinearAdd instead
    of leaving the convolution in FP32), and the QAT model computes exactly what the exported
    graph computes. Returns the number of residual blocks.
    """
    count = 0
    for block in model.modules():
        if not any(getattr(block, f, False) is True for f in RESIDUAL_FLAGS):
            continue
        layers = [m for m in block.modules()
                  if isinstance(m, QUANTIZED_TYPES) and hasattr(m, INPUT_QUANTIZER)]
        if not layers:
            continue
        # Not registered as a submodule: the quantizer belongs (and is saved) with layers[0].
        object.__setattr__(block, "_ftedge_shortcut_quantizer", getattr(layers[0], INPUT_QUANTIZER))
        block.register_forward_pre_hook(_quantize_block_input)
        last = layers[-1]
        if isinstance(last, nn.Conv2d) and not hasattr(last, OUTPUT_QUANTIZER):
            last.add_module(OUTPUT_QUANTIZER, activation_quantizer())
            last.register_forward_hook(_quantize_output)
        count += 1
    return count


# Activations that no integer kernel clips for free (unlike ReLU/ReLU6, which a Q range absorbs).
SMOOTH_ACTIVATIONS = (nn.Hardswish, nn.Hardsigmoid, nn.SiLU, nn.Sigmoid, nn.GELU, nn.Mish,
                      nn.Tanh)
TIMM_SMOOTH_ACTIVATIONS = {"HardSwish", "HardSigmoid", "HardMish", "Swish", "Mish", "GELU",
                           "Sigmoid", "Tanh", "HardSwishMe", "HardSigmoidMe", "SwishMe"}
# The gate modules of torchvision's SqueezeExcitation and timm's SqueezeExcite / SEModule.
SE_GATES = ("scale_activation", "gate")


def _is_smooth_activation(m: nn.Module) -> bool:
    return isinstance(m, SMOOTH_ACTIVATIONS) or (
        type(m).__module__.startswith("timm.") and type(m).__name__ in TIMM_SMOOTH_ACTIVATIONS)


def _se_gate(m: nn.Module) -> nn.Module | None:
    """The gate activation of a squeeze-excite block, None for any other module."""
    if "SqueezeExcit" not in type(m).__name__ and "SEModule" not in type(m).__name__:
        return None
    return next((g for g in (getattr(m, a, None) for a in SE_GATES) if isinstance(g, nn.Module)),
                None)


def _is_global_pool(m: nn.Module) -> bool:
    return isinstance(m, nn.AdaptiveAvgPool2d) or type(m).__name__ == "SelectAdaptivePool2d"


def _add_input_quantizer(m: nn.Module) -> None:
    m.add_module(INPUT_QUANTIZER, activation_quantizer())
    m.register_forward_pre_hook(_quantize_input)


def quantize_activations(model: nn.Module) -> int:
    """Q/DQ wherever a convolution's output would otherwise not go straight into a Q.

    ONNX Runtime turns DQ -> Conv -> Q into an integer QLinearConv only when the convolution's
    output goes straight into a Q (a Relu/Clip in between is absorbed by the Q's range);
    anything else leaves the convolution in FP32 between Q/DQ pairs (MobileNetV3-Large with Q/DQ
    only at layer inputs: 31 of 62 convolutions, INT8 at 0.38x FP32). So:
    - the input of every smooth activation (hardswish, hardsigmoid, SiLU, sigmoid, ...), i.e.
      the output of the convolution before it;
    - the input of every squeeze-excite block (the depthwise output its pooling and its Mul
      share), and the output of its gate, so the channel scaling Mul has INT8 on both inputs
      (ONNX Runtime's QLinearMul) and feeds the projection's Q;
    - the input of the global average pooling before the classifier (the head convolution's
      output: Lite0 ran it in FP32, 48 of 49); torchvision's MobileNetV2 pools functionally,
      so there the output of its `features` gets the quantizer.
    The scales are learned by QAT (or calibrated by PTQ) like every other activation scale, so
    the exported graph computes what the QAT model computed. Returns the quantizers added.
    """
    added = 0
    in_se: set[int] = set()
    for m in list(model.modules()):
        gate = _se_gate(m)
        if gate is None or id(m) in in_se:
            continue
        in_se.update(id(x) for x in m.modules())
        _add_input_quantizer(m)
        gate.add_module(OUTPUT_QUANTIZER, activation_quantizer())
        gate.register_forward_hook(_quantize_output)
        added += 2
    pools, in_pool = 0, set()
    for m in list(model.modules()):
        if hasattr(m, INPUT_QUANTIZER) or id(m) in in_pool:
            continue
        if _is_smooth_activation(m) or (_is_global_pool(m) and id(m) not in in_se):
            _add_input_quantizer(m)
            added += 1
            if _is_global_pool(m):  # timm's SelectAdaptivePool2d wraps an AdaptiveAvgPool2d
                pools += 1
                in_pool.update(id(x) for x in m.modules())
    features = getattr(model, "features", None)
    functional_pool = not pools and isinstance(features, nn.Sequential)
    if functional_pool and not hasattr(features, OUTPUT_QUANTIZER):
        features.add_module(OUTPUT_QUANTIZER, activation_quantizer())  # pooled functionally
        features.register_forward_hook(_quantize_output)
        added += 1
    return added


@dataclass
class QatCoverage:
    """How much of the network computes in INT8."""

    folded_batchnorms: int
    quantized_layers: int
    total_layers: int  # Conv2d + Linear
    residual_adds: int  # residual Adds whose shortcut is quantized
    unquantized: list[str]
    activation_quantizers: int = 0  # activations, squeeze-excite, pooling: quantize_activations

    def to_dict(self) -> dict:
        return {"folded_batchnorms": self.folded_batchnorms,
                "quantized_layers": self.quantized_layers, "total_layers": self.total_layers,
                "quantized_residual_adds": self.residual_adds, "unquantized": self.unquantized,
                "activation_quantizers": self.activation_quantizers}

    def __str__(self) -> str:
        extra = (f", {self.activation_quantizers} activation, squeeze-excite and pooling "
                 "quantizers"
                 if self.activation_quantizers else "")
        return (f"{self.quantized_layers}/{self.total_layers} Conv/Linear layers carry INT8 "
                f"weights and inputs, {self.residual_adds} residual Adds get INT8 shortcuts"
                f"{extra}; {self.folded_batchnorms} BatchNorms folded")


def prepare_qat(model: nn.Module, example: torch.Tensor, *, weight_bits: int | None = None,
                activations: bool = True, narrow_depthwise: bool = False) -> QatCoverage:
    """Fold BatchNorm and attach weight (7 or 8 bit, see layer_weight_bits) and input fake
    quantizers, in place.

    `activations=False` is the placement of runs made before quantize_activations existed
    (their qat_best.pt has no such quantizers); `narrow_depthwise=True` that of runs made
    before depthwise convolutions got full-range weights.
    """
    weight_bits = or_default(weight_bits, WEIGHT_BITS)
    if weight_bits not in (7, 8):
        raise ValueError(f"weight_bits must be 7 or 8, got {weight_bits}")
    folded = fold_batchnorm(model, example)
    layers = [(n, m) for n, m in model.named_modules() if isinstance(m, QUANTIZED_TYPES)]
    for _, m in layers:
        parametrize.register_parametrization(
            m, "weight", weight_quantizer(layer_weight_bits(m, weight_bits, narrow_depthwise)))
        m.add_module(INPUT_QUANTIZER, activation_quantizer())
        m.register_forward_pre_hook(_quantize_input)
    residuals = quantize_residual_shortcuts(model)
    acts = quantize_activations(model) if activations else 0
    return QatCoverage(folded, len(layers), len(layers), residuals, unprepared_layers(model), acts)


def input_quantizers(model: nn.Module) -> list[FakeQuantize]:
    """Every activation quantizer: layer inputs, and residual-branch outputs."""
    return [getattr(m, name) for m in model.modules()
            for name in (INPUT_QUANTIZER, OUTPUT_QUANTIZER) if hasattr(m, name)]


def set_activation_observers(model: nn.Module, enabled: bool) -> None:
    """Let activation ranges follow the data (True) or freeze them (False)."""
    for q in input_quantizers(model):
        q.enable_observer(enabled)


def set_fake_quant(model: nn.Module, enabled: bool) -> None:
    for m in model.modules():
        if isinstance(m, FakeQuantize):
            m.enable_fake_quant(enabled)


def freeze_all_observers(model: nn.Module) -> None:
    """Fix every scale (weights too): what export and evaluation need."""
    for m in model.modules():
        if isinstance(m, FakeQuantize):
            m.enable_observer(False)


@torch.no_grad()
def calibrate_activations(model: nn.Module, batches, to_device) -> int:
    """Set initial activation ranges from a few batches with quantization off; returns images seen."""
    was_training = model.training
    model.eval()
    set_fake_quant(model, False)
    set_activation_observers(model, True)
    seen = 0
    for x, _ in batches:
        model(to_device(x))
        seen += x.shape[0]
    set_fake_quant(model, True)
    model.train(was_training)
    return seen


def is_prepared(model: nn.Module) -> bool:
    return any(isinstance(m, FakeQuantize) for m in model.modules())


def unprepared_layers(model: nn.Module) -> list[str]:
    """Conv/Linear layers without quantizers (should be none after prepare_qat)."""
    return [n for n, m in model.named_modules()
            if isinstance(m, QUANTIZED_TYPES) and not hasattr(m, INPUT_QUANTIZER)]
