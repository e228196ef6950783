import numpy as np
import pytest
import torch
import torchvision
from PIL import Image

from ftedge.errors import ConfigError, WeightsError
from ftedge.models.registry import available_models, build_model, get_spec, preprocessing_contract
from ftedge.models.weights import torch_hub_checkpoint


def test_registry_has_the_promised_models():
    assert {"efficientnet_lite0", "mobilenet_v2", "mobilenet_v3_small", "mobilenet_v3_large",
            "efficientnet_b0"} <= set(available_models())


@pytest.mark.parametrize("name", ["mobilenet_v3_small", "mobilenet_v2", "efficientnet_b0"])
def test_head_is_replaced_for_user_classes(name):
    built = build_model(name, 7, weights="none")
    out = built.model.eval()(torch.zeros(1, 3, 64, 64))
    assert out.shape == (1, 7)
    assert built.head_parameters() and built.backbone_parameters()
    n_head = sum(p.numel() for p in built.head_parameters())
    assert n_head < sum(p.numel() for p in built.model.parameters()) / 2


def test_any_timm_model_by_name():
    built = build_model("timm/resnet10t", 3, weights="none")
    assert built.spec.source == "timm"
    assert built.model(torch.zeros(2, 3, 32, 32)).shape == (2, 3)


def test_unknown_model_is_a_clear_error():
    with pytest.raises(ConfigError, match="unknown model 'mobilenet_v9'"):
        get_spec("mobilenet_v9")


def test_torchvision_imagenet_weights_come_from_the_hub_cache(tmp_path, monkeypatch):
    monkeypatch.setenv("TORCH_HOME", str(tmp_path))
    weights = torchvision.models.MobileNet_V3_Small_Weights.DEFAULT
    reference = torchvision.models.mobilenet_v3_small()
    cached = torch_hub_checkpoint(weights.url)
    assert cached.parent == tmp_path / "hub" / "checkpoints"
    cached.parent.mkdir(parents=True)
    torch.save(reference.state_dict(), cached)
    built = build_model("mobilenet_v3_small", 4, weights="imagenet")
    got = built.model.state_dict()
    assert torch.equal(got["features.0.0.weight"], reference.state_dict()["features.0.0.weight"])
    assert got["classifier.3.weight"].shape == (4, 1024)
    assert str(cached) in built.weights_note


def test_missing_torchvision_weights_say_which_file_goes_where(tmp_path, monkeypatch):
    monkeypatch.setenv("TORCH_HOME", str(tmp_path))
    with pytest.raises(WeightsError) as e:
        build_model("mobilenet_v2", 3, weights="imagenet")
    hint = e.value.hint
    assert "mobilenet_v2-" in hint and str(tmp_path / "hub" / "checkpoints") in hint
    assert "https://download.pytorch.org/models/" in hint


def test_missing_timm_weights_never_fall_back_to_random(tmp_path, monkeypatch):
    monkeypatch.setenv("HF_HOME", str(tmp_path))
    with pytest.raises(WeightsError, match="not available offline") as e:
        build_model("timm/resnet10t", 3, weights="imagenet")
    assert "--weights FILE" in e.value.hint and "models--timm--resnet10t" in e.value.hint


def test_timm_imagenet_weights_come_from_the_hugging_face_cache(tmp_path, monkeypatch):
    import timm
    from safetensors.torch import save_file

    monkeypatch.setenv("HF_HOME", str(tmp_path))
    reference = timm.create_model("resnet10t")
    hub_id = reference.pretrained_cfg["hf_hub_id"]
    repo = tmp_path / "hub" / f"models--{hub_id.replace('/', '--')}"
    (repo / "refs").mkdir(parents=True)
    (repo / "refs" / "main").write_text("abc123")
    (repo / "snapshots" / "abc123").mkdir(parents=True)
    save_file(reference.state_dict(), repo / "snapshots" / "abc123" / "model.safetensors")
    built = build_model("timm/resnet10t", 3, weights="imagenet")
    assert torch.equal(built.model.state_dict()["conv1.0.weight"],
                       reference.state_dict()["conv1.0.weight"])
    assert built.model.get_classifier().out_features == 3


def test_weights_file_loads_backbone_and_skips_other_head(tmp_path):
    src = torchvision.models.mobilenet_v3_small()
    path = tmp_path / "w.pth"
    torch.save({"state_dict": {f"module.{k}": v for k, v in src.state_dict().items()}}, path)
    built = build_model("mobilenet_v3_small", 5, weights=str(path))
    assert torch.equal(built.model.state_dict()["features.1.block.0.0.weight"],
                       src.state_dict()["features.1.block.0.0.weight"])
    assert "classifier tensor(s) of another shape skipped" not in built.weights_note


def test_weights_for_another_architecture_are_refused(tmp_path):
    path = tmp_path / "w.pth"
    torch.save(torchvision.models.mobilenet_v2().state_dict(), path)
    with pytest.raises(WeightsError, match="do not fit"):
        build_model("mobilenet_v3_small", 5, weights=str(path))


def test_weights_path_that_does_not_exist(tmp_path):
    with pytest.raises(WeightsError, match="neither 'imagenet', 'none' nor a file"):
        build_model("mobilenet_v3_small", 5, weights=str(tmp_path / "missing.pth"))


def test_contract_for_lite0():
    c = preprocessing_contract(get_spec("efficientnet_lite0"), 96)
    assert c["mean"] == [0.5] * 3 and c["std"] == [0.5] * 3 and c["input_size"] == [3, 96, 96]
    assert c["resize"] == 110 and c["channel_order"] == "RGB"


def test_lite0_imagenet_weights_call_chelsea_a_cat():
    skimage_data = pytest.importorskip("skimage.data")
    import timm

    from ftedge.data.transforms import eval_transform
    from ftedge.models.weights import _lite0_package_state, load_state_dict_checked

    model = timm.create_model("tf_efficientnet_lite0").eval()
    state, origin = _lite0_package_state()
    load_state_dict_checked(model, state, origin)
    contract = preprocessing_contract(get_spec("efficientnet_lite0"), None)
    x = eval_transform(contract)(Image.fromarray(skimage_data.chelsea()))[None]
    with torch.no_grad():
        prob = model(x).softmax(-1)[0]
    assert int(prob.argmax()) in range(281, 286)  # tabby, tiger cat, Persian, Siamese, Egyptian
    assert float(prob[281:286].sum()) > 0.8
    assert np.isfinite(prob.numpy()).all()
