"""The QAT stage: which epochs are kept for scoring in ONNX Runtime, and the stage as a
function of its explicit inputs (QatInputs) on a tiny model, without training."""

from types import SimpleNamespace

import pytest
import torch
from torch import nn

from ftedge.formats.run import QAT_CANDIDATES, RunFolder
from ftedge.stages.tune.qat_stage import candidate_keeper
from ftedge.training.checkpoint import load_checkpoint, save_best

META = {"model_name": "x", "classes": ["a", "b"], "num_classes": 2, "preprocessing": {
    "input_size": [3, 8, 8], "resize": 8, "interpolation": "bilinear", "mean": [0, 0, 0],
    "std": [1, 1, 1]}}


def _trainer(tmp_path, k):
    return SimpleNamespace(run=tmp_path, model=nn.Linear(2, 2), qat_candidates=[],
                           cfg=SimpleNamespace(qat=SimpleNamespace(candidates=k)))


def keep_candidate(t, row):
    """What the trainer does after a QAT epoch."""
    save = lambda path: save_best(path, t.model, {**META, **row})  # noqa: E731
    candidate_keeper(RunFolder(t.run), t.cfg.qat, t.qat_candidates).offer(row, save)


@pytest.mark.parametrize("k", [2, 3])
def test_the_best_epochs_are_kept_later_first_on_ties_and_the_rest_deleted(tmp_path, k):
    t = _trainer(tmp_path, k)
    for epoch, top1 in [(5, 0.90), (6, 0.95), (7, 0.93), (8, 0.95), (9, 0.80), (10, 0.93)]:
        t.model.bias.data.fill_(epoch)
        keep_candidate(t, {"epoch": epoch, "val_top1": top1})
    expected = [8, 6, 10][:k]  # 0.95 twice (the later first), then the later of the 0.93s
    assert [c["epoch"] for c in t.qat_candidates] == expected
    files = sorted(p.name for p in (tmp_path / QAT_CANDIDATES).iterdir())
    assert files == sorted(f"epoch_{e:03d}.pt" for e in expected)
    for c in t.qat_candidates:  # each file holds that epoch's weights
        state = load_checkpoint(tmp_path / QAT_CANDIDATES / c["file"])["model_state"]
        assert float(state["bias"][0]) == c["epoch"]


def test_one_candidate_keeps_no_files(tmp_path):
    t = _trainer(tmp_path, 1)
    keep_candidate(t, {"epoch": 3, "val_top1": 0.9})
    assert t.qat_candidates == [] and not (tmp_path / QAT_CANDIDATES).exists()


def test_cleanup_removes_only_the_candidates_ftedge_wrote(tmp_path):
    from ftedge.stages.tune.qat_stage import _remove_candidates

    folder = tmp_path / QAT_CANDIDATES
    folder.mkdir()
    for name in ("epoch_004.pt", "epoch_007.pt"):  # listed, and left by an interrupted epoch
        (folder / name).write_bytes(b"x")
    (folder / "notes.txt").write_text("mine")
    _remove_candidates(folder)
    assert [p.name for p in folder.iterdir()] == ["notes.txt"]
    (folder / "notes.txt").unlink()
    _remove_candidates(folder)
    assert not folder.exists()


# -- the stage as a function of QatInputs: tiny model, tiny tensors, no training -------------

def _inputs(tmp_path, model, *, distill=False, teacher=None):
    from torch.utils.data import DataLoader, TensorDataset

    from ftedge.config import QatConfig, TuneConfig
    from ftedge.formats.contract import build_contract
    from ftedge.stages.tune.qat_stage import QatInputs
    from ftedge.training.data_setup import val_loader
    from ftedge.training.dist import DistContext
    from ftedge.training.loop import StepSettings

    g = torch.Generator().manual_seed(1)
    x = torch.randn(16, 3, 8, 8, generator=g)
    val_x = torch.randn(12, 3, 8, 8, generator=g).numpy()
    with torch.no_grad():  # the labels the untouched model gives: it scores 1.0 on them
        val_labels = model(torch.from_numpy(val_x)).argmax(1).numpy()
    contract = build_contract(input_size=8, resize=8, interpolation="bilinear",
                              mean=(0, 0, 0), std=(1, 1, 1))
    cfg = TuneConfig(qat=QatConfig(init="minmax", distill=distill, calib_batches=2))
    return QatInputs(model=model, train_loader=DataLoader(TensorDataset(x, x[:, 0, 0, 0] > 0),
                                                          batch_size=8),
                     val_loader=val_loader(val_x, val_labels, 8), val_x=val_x,
                     val_labels=val_labels, cfg=cfg, contract=contract, classes=["a", "b", "c"],
                     train_samples=[], val_samples=[], run=RunFolder(tmp_path),
                     settings=StepSettings("cpu", False, None, None, None), ctx=DistContext(),
                     teacher=teacher or (lambda: None))


TINY_META = {**META, "classes": ["a", "b", "c"], "num_classes": 3}


def test_enter_qat_returns_the_qat_model_s_optimizer_loss_and_coverage(tmp_path):
    from ftedge.quant.qat import is_prepared
    from ftedge.stages.tune.qat_stage import DistillLoss, enter_qat
    from ftedge.training.checkpoint import save_best
    from tests.conftest import tiny_convnet

    best = tiny_convnet(seed=3)
    save_best(tmp_path / "best.pt", best, {**TINY_META, "epoch": 2, "val_top1": 1.0})
    model = tiny_convnet(seed=0)  # trained past best.pt: QAT starts from best.pt's weights
    inp = _inputs(tmp_path, model, distill=True, teacher=lambda: tiny_convnet(seed=3))
    start = enter_qat(inp)
    assert is_prepared(model) and start.coverage.quantized_layers == 3
    head = model[-1].parametrizations.weight.original  # under its fake quantizer
    assert torch.equal(head, best[-1].weight)  # the head: no BatchNorm to fold
    group, = start.optimizer.param_groups
    assert group["weight_decay"] == 0.0 and group["lr"] == inp.cfg.qat.lr
    assert len(group["params"]) == sum(p.requires_grad for p in model.parameters())
    assert isinstance(start.criterion, DistillLoss)


def test_choose_checkpoint_picks_the_best_candidate_in_onnx_runtime_not_in_fake_quant(tmp_path):
    from ftedge.formats.run import QAT_BEST
    from ftedge.stages.tune.qat_stage import choose_checkpoint
    from ftedge.training.checkpoint import load_checkpoint, save_best
    from tests.conftest import tiny_convnet

    model = tiny_convnet()
    inp = _inputs(tmp_path, model)
    right = {k: v.clone() for k, v in model.state_dict().items()}
    candidates = []
    for epoch, top1, sign in ((5, 0.5, 1.0), (6, 0.9, -1.0)):  # epoch 6: the head negated
        with torch.no_grad():
            model.load_state_dict(right)
            model[-1].weight.mul_(sign)
            model[-1].bias.mul_(sign)
        candidates += [{"epoch": epoch, "val_top1": top1, "file": f"epoch_{epoch:03d}.pt"}]
        save_best(tmp_path / QAT_CANDIDATES / candidates[-1]["file"], model,
                  {**TINY_META, "epoch": epoch, "val_top1": top1})
    chosen = choose_checkpoint(inp, candidates, meta={**TINY_META, "note": "mine"})
    assert chosen["chosen_epoch"] == 5
    scored = {c["epoch"]: c for c in chosen["candidates"]}
    assert scored[5]["onnx_runtime_top1"] == 1.0 and scored[6]["onnx_runtime_top1"] < 0.5
    assert scored[6]["fake_quant_top1"] == 0.9
    best = load_checkpoint(tmp_path / QAT_BEST)
    assert best["epoch"] == 5 and best["val_top1"] == 0.5 and best["note"] == "mine"
    assert torch.equal(best["model_state"]["7.weight"], right["7.weight"])
    assert not (tmp_path / QAT_CANDIDATES).exists()  # scored, chosen, deleted
    assert choose_checkpoint(inp, candidates[:1], meta=TINY_META) is None  # nothing to choose


def test_finish_qat_exports_both_graphs_gates_them_and_writes_gate_json(tmp_path, capsys):
    import json

    from ftedge.formats.run import BEST, FP32_ONNX, QAT_BEST
    from ftedge.io import sha256_file
    from ftedge.quant.qat import calibrate_activations, prepare_qat
    from ftedge.stages.tune.qat_stage import finish_qat
    from ftedge.training.checkpoint import save_best
    from tests.conftest import tiny_convnet

    fp32 = tiny_convnet()
    save_best(tmp_path / BEST, fp32, {**TINY_META, "epoch": 2, "val_top1": 1.0})
    model = tiny_convnet()
    inp = _inputs(tmp_path, model)
    prepare_qat(model, torch.from_numpy(inp.val_x[:2]), weight_bits=7)
    calibrate_activations(model, [(torch.from_numpy(inp.val_x), None)], lambda b: b)
    save_best(tmp_path / QAT_BEST, model, {**TINY_META, "epoch": 7, "val_top1": 1.0})
    result = finish_qat(inp, fp32, candidates=[], meta=TINY_META)
    written = json.loads((tmp_path / "gate.json").read_text())
    assert written["graph"] == "model.int8.onnx"
    assert written["graph_sha256"] == sha256_file(tmp_path / "model.int8.onnx")
    assert written["qat_checkpoint"] == {"candidates": [], "chosen_epoch": 7}
    assert written["coverage"]["int8_layers"] == 3 and written["fp32_top1"] == 1.0
    assert written["parity"]["fp32_onnx_vs_torch_max_abs"] < 1e-4
    assert 0 < written["onnx"]["size_ratio"] and (tmp_path / FP32_ONNX).is_file()
    assert written["passed"] == result["passed"] == (written["drop_points"] <= 1.0)
    assert (tmp_path / "gate.md").is_file() and "INT8 gate" in capsys.readouterr().err
