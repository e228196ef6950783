"""training/loop.py on a tiny linear model: one step learns, an epoch counts, logits in order."""

import numpy as np
import torch
from torch import nn
from torch.utils.data import DataLoader, TensorDataset

from ftedge.training.loop import EpochStats, StepSettings, predict_logits, train_one_epoch, train_step

CPU = StepSettings(device="cpu", channels_last=False, amp_dtype=None, scaler=None, grad_clip=None)


def _data(n=32):
    g = torch.Generator().manual_seed(0)
    x = torch.randn(n, 4, generator=g)
    return x, (x[:, 0] > 0).long()  # the sign of the first feature


def test_a_step_returns_the_summed_loss_and_hits_and_lowers_the_loss():
    torch.manual_seed(0)
    model, (x, y) = nn.Linear(4, 2), _data()
    opt = torch.optim.SGD(model.parameters(), lr=0.5)
    loss = nn.CrossEntropyLoss()
    with torch.no_grad():
        before = loss(model(x), y).item()
        hits = int((model(x).argmax(1) == y).sum())
    loss_sum, correct = train_step(model, x, y, optimizer=opt, criterion=loss, s=CPU)
    assert abs(loss_sum - before * 32) < 1e-4 and correct == hits  # measured before the update
    with torch.no_grad():
        assert loss(model(x), y).item() < before


def test_a_criterion_that_needs_the_batch_gets_it_and_clipping_bounds_the_update():
    seen = []

    class Needs(nn.Module):
        needs_input = True

        def forward(self, logits, y, x):
            seen.append(x.shape)
            return nn.functional.cross_entropy(logits, y) * 1e6  # a huge gradient

    torch.manual_seed(0)
    model, (x, y) = nn.Linear(4, 2), _data(8)
    w0 = model.weight.detach().clone()
    clipped = StepSettings("cpu", False, None, None, grad_clip=0.01)
    train_step(model, x, y, optimizer=torch.optim.SGD(model.parameters(), lr=1.0),
               criterion=Needs(), s=clipped)
    step = torch.cat([(model.weight - w0).flatten()]).norm().item()
    assert seen == [x.shape] and step <= 0.01 + 1e-6


def test_an_epoch_counts_every_image_and_calls_the_hooks():
    torch.manual_seed(0)
    model, (x, y) = nn.Linear(4, 2), _data()
    loader = DataLoader(TensorDataset(x, y), batch_size=10)
    calls = []
    stats = train_one_epoch(model, loader, torch.optim.SGD(model.parameters(), lr=0.1),
                            criterion=nn.CrossEntropyLoss(), s=CPU,
                            before_step=lambda: calls.append("before"),
                            after_step=lambda st: calls.append(st.seen))
    assert isinstance(stats, EpochStats) and stats.seen == 32 and 0 <= stats.correct <= 32
    assert calls == ["before", 10, "before", 20, "before", 30, "before", 32]
    assert stats.compute_s > 0 and stats.wait_s >= 0 and stats.loss_sum > 0


def test_predict_logits_in_loader_order_and_empty():
    model, (x, y) = nn.Linear(4, 2), _data(7)
    logits, labels = predict_logits(model, DataLoader(TensorDataset(x, y), batch_size=3), CPU)
    with torch.no_grad():
        np.testing.assert_allclose(logits, model(x).numpy(), rtol=1e-6)
    assert labels.tolist() == y.tolist() and logits.dtype == np.float32 and not model.training
    empty = predict_logits(model, [], CPU)
    assert empty[0].shape == (0, 0) and empty[1].shape == (0,)
