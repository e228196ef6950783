import pytest
import timm
import torch
import torchvision
from torch.ao.quantization import FakeQuantize

from ftedge.quant.fold import FoldError, fold_batchnorm
from ftedge.quant.qat import (calibrate_activations, freeze_all_observers, input_quantizers,
                              prepare_qat, set_activation_observers)


def _randomise_bn(model):
    g = torch.Generator().manual_seed(0)
    for m in model.modules():
        if isinstance(m, torch.nn.BatchNorm2d):
            m.running_mean.copy_(torch.rand(m.num_features, generator=g) - 0.5)
            m.running_var.copy_(torch.rand(m.num_features, generator=g) + 0.5)
            m.weight.data.copy_(torch.rand(m.num_features, generator=g) + 0.5)
            m.bias.data.copy_(torch.rand(m.num_features, generator=g) - 0.5)


@pytest.mark.parametrize("make", [lambda: timm.create_model("tf_efficientnet_lite0", num_classes=5),
                                  lambda: torchvision.models.mobilenet_v3_small(num_classes=5)],
                         ids=["lite0", "mobilenet_v3_small"])
def test_folding_keeps_the_function(make):
    model = make().eval()
    _randomise_bn(model)
    x = torch.randn(2, 3, 64, 64)
    with torch.no_grad():
        before = model(x)
        n = fold_batchnorm(model, x)
        after = model(x)
    assert n > 10
    assert not any(isinstance(m, torch.nn.BatchNorm2d) for m in model.modules())
    assert torch.allclose(before, after, atol=1e-4, rtol=1e-4)


def test_unfoldable_batchnorm_is_an_error():
    model = torch.nn.Sequential(torch.nn.BatchNorm2d(3), torch.nn.Conv2d(3, 4, 1))
    with pytest.raises(FoldError, match="follow no convolution"):
        fold_batchnorm(model, torch.randn(1, 3, 8, 8))


def test_lite0_coverage_every_conv_and_linear_and_residual():
    model = timm.create_model("tf_efficientnet_lite0", num_classes=5).eval()
    cov = prepare_qat(model, torch.randn(2, 3, 64, 64))
    assert cov.total_layers == 50 and cov.quantized_layers == 50 and cov.unquantized == []
    assert cov.folded_batchnorms == 49 and cov.residual_adds == 9
    fqs = [m for m in model.modules() if isinstance(m, FakeQuantize)]
    assert cov.activation_quantizers == 1  # the global pooling's input (the head conv's output)
    assert len(fqs) == 110  # 50 weights + 50 inputs + 9 residual-branch outputs + 1 pooling
    for q in fqs:
        assert q.quant_min == -128 and q.quant_max == 127 and q.dtype == torch.qint8
        assert q.qscheme in (torch.per_tensor_symmetric, torch.per_channel_symmetric)


def test_observers_freeze_and_calibration_sets_ranges():
    model = torchvision.models.mobilenet_v3_small(num_classes=3).eval()
    x = torch.randn(4, 3, 64, 64) * 3
    prepare_qat(model, x)
    calibrate_activations(model, [(x, None)], lambda t: t)
    q = input_quantizers(model)[0]
    assert float(q.scale) == pytest.approx(float(x.abs().max()) / 127.5, rel=1e-5)
    set_activation_observers(model, False)
    model(x * 10)
    assert float(q.scale) == pytest.approx(float(x.abs().max()) / 127.5, rel=1e-5)
    freeze_all_observers(model)
    assert all(not bool(m.observer_enabled) for m in model.modules() if isinstance(m, FakeQuantize))


def test_prepared_state_dict_round_trips():
    x = torch.randn(2, 3, 32, 32)
    a = torchvision.models.mobilenet_v2(num_classes=3).eval()
    prepare_qat(a, x)
    calibrate_activations(a, [(x, None)], lambda t: t)
    b = torchvision.models.mobilenet_v2(num_classes=3).eval()
    prepare_qat(b, x)
    b.load_state_dict(a.state_dict())
    freeze_all_observers(a)
    freeze_all_observers(b)
    with torch.no_grad():
        assert torch.equal(a(x), b(x))


@pytest.mark.parametrize("activations", [True, False])
def test_mobilenet_v3_every_convolution_runs_as_qlinearconv_in_ort(tmp_path, activations):
    """Hardswish and squeeze-excite get Q/DQ where ONNX Runtime needs them; without them (the
    old placement) convolutions before hardswish and before squeeze-excite stay in FP32."""
    import onnx
    import onnxruntime as ort

    from ftedge.graph.layout import to_ort_layout
    from ftedge.quant.onnx_export import export_onnx
    from ftedge.runtime.onnxruntime.runner import conv_kernels, executed_ops

    torch.manual_seed(0)
    model = torchvision.models.mobilenet_v3_small(num_classes=3).eval()
    x = torch.rand(4, 3, 64, 64)
    cov = prepare_qat(model, x, activations=activations)
    # hardswish and hardsigmoid inputs, SE inputs and SE gate outputs, the global pooling
    n_act = sum(isinstance(m, (torch.nn.Hardswish, torch.nn.Hardsigmoid)) for m in model.modules())
    n_se = sum(type(m).__name__ == "SqueezeExcitation" for m in model.modules())
    assert cov.activation_quantizers == ((n_act + 2 * n_se + 1) if activations else 0)
    calibrate_activations(model, [(x, None)], lambda t: t)
    freeze_all_observers(model)
    path = tmp_path / "int8.onnx"
    export_onnx(model, x[:1], path, opset=17, metadata={})
    with torch.no_grad():
        expected = model(x).numpy()
    got = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"]).run(
        None, {"input": x.numpy()})[0]
    assert abs(got - expected).max() < 1e-3 * max(1.0, float(abs(expected).max()))
    graph = onnx.load(str(path))
    to_ort_layout(graph)
    convs = sum(n.op_type == "Conv" for n in graph.graph.node)
    kernels = conv_kernels(graph)
    if activations:
        assert kernels == {"QLinearConv": convs}
        assert executed_ops(graph)["QLinearMul"] == n_se  # the SE scaling runs on integers
    else:
        assert kernels.get("Conv", 0) + kernels.get("FusedConv", 0) > 0, kernels
        assert kernels.get("QLinearConv", 0) < convs


def test_activation_quantizers_are_saved_and_reloaded():
    x = torch.rand(2, 3, 32, 32)
    a = torchvision.models.mobilenet_v3_small(num_classes=3).eval()
    prepare_qat(a, x)
    old = torchvision.models.mobilenet_v3_small(num_classes=3).eval()
    prepare_qat(old, x, activations=False)
    extra = set(a.state_dict()) - set(old.state_dict())
    assert extra and all("quantizer" in k for k in extra)
    assert any(".scale_activation.output_quantizer." in k for k in extra)


def _weight_codes(model) -> dict[str, int]:
    """Largest |integer code| of each layer's fake-quantized weight."""
    from ftedge.quant.qat import QUANTIZED_TYPES

    tops = {}
    for name, m in model.named_modules():
        if isinstance(m, QUANTIZED_TYPES):
            fq = m.parametrizations.weight[0]
            w = m.parametrizations.weight.original.detach()
            scale = fq.scale.reshape(-1, *([1] * (w.dim() - 1)))
            tops[name] = int((w / scale).round().clamp(-128, 127).abs().max())
    return tops


def test_depthwise_weights_keep_the_full_range_the_rest_7_bits():
    """Depthwise kernels widen products to 32 bits (no u8 x s8 pair sums to saturate), so
    only the other layers are narrowed, as NNCF's overflow fix does; 8 bits: all full."""
    from ftedge.quant.qat import is_depthwise

    x = torch.rand(2, 3, 64, 64)
    # per channel, the largest weight takes the top code (127.5 or 63.5 rounded)
    full, seven = {127, 128}, {63, 64}
    for bits, narrow_dw, want_dw, want_rest in ((7, False, full, seven), (8, False, full, full),
                                                (7, True, seven, seven)):
        torch.manual_seed(0)
        model = torchvision.models.mobilenet_v2(num_classes=3).eval()
        dw = {n for n, m in model.named_modules() if is_depthwise(m)}
        prepare_qat(model, x, weight_bits=bits, narrow_depthwise=narrow_dw)
        with torch.no_grad():
            model(x)  # the weight observers set their scales
        tops = _weight_codes(model)
        assert len(dw) == 17 and dw < set(tops)
        assert {tops[n] for n in dw} <= want_dw, (bits, narrow_dw)
        assert {t for n, t in tops.items() if n not in dw} <= want_rest, (bits, narrow_dw)


def test_grouped_but_not_depthwise_convolutions_stay_narrow():
    from ftedge.quant.qat import is_depthwise, layer_weight_bits

    grouped = torch.nn.Conv2d(8, 16, 3, groups=8)  # two outputs per group: a GEMM per group
    assert not is_depthwise(grouped) and layer_weight_bits(grouped, 7) == 7
    assert is_depthwise(torch.nn.Conv2d(8, 8, 3, groups=8))
    assert not is_depthwise(torch.nn.Conv2d(1, 1, 3))  # one channel, groups 1: a plain conv
