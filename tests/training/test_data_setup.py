"""The val loader: the split's arrays, in order, in batches, sharing their memory."""

from __future__ import annotations

import numpy as np
import torch

from ftedge.training.data_setup import val_loader


def test_val_loader_yields_the_arrays_in_order_in_batches():
    x = np.arange(5 * 3 * 2 * 2, dtype=np.float32).reshape(5, 3, 2, 2)
    labels = np.array([4, 3, 2, 1, 0], dtype=np.int64)
    batches = list(val_loader(x, labels, 2))
    assert [len(b[0]) for b in batches] == [2, 2, 1]
    assert np.array_equal(torch.cat([b[0] for b in batches]).numpy(), x)
    assert torch.cat([b[1] for b in batches]).tolist() == [4, 3, 2, 1, 0]
    assert batches[0][1].dtype == torch.int64
