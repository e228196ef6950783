"""Training throughput: ftedge's training step vs a plain PyTorch loop, side by side.

Each measurement runs in its own process (malloc settings are process-wide), on the same
model, batch size, resolution and in-memory data:

  plain        the loop a user would write: NCHW, default malloc
  plain+env    the same loop under ftedge's process settings (malloc tuning), NCHW
  plain+cl     that loop with channels_last too: the same work as ftedge's step, so
               ftedge/plain+cl is the overhead of ftedge's own step code
  ftedge       ftedge's train_one_epoch with the settings `ftedge tune` resolves
  ftedge+data  ftedge's real input pipeline (decoded-image cache, augmentation, DataLoader)
               on the digits demo data: how long the step waits for data

Usage: python benchmarks/tune_throughput.py [--sizes 128,224] [--steps 8] [--batch 32]
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path


def _model(head_only: bool):
    import timm
    import torch

    torch.manual_seed(0)
    m = timm.create_model("tf_efficientnet_lite0", num_classes=10)
    if head_only:
        for n, p in m.named_parameters():
            p.requires_grad_(n.startswith("classifier."))
    return m


def measure(mode: str, size: int, batch: int, steps: int, head_only: bool) -> dict:
    import torch
    from torch import nn

    from ftedge.training.loop import StepSettings, train_one_epoch, train_step
    from ftedge.training.perf import keep_freed_memory

    if mode != "plain":
        keep_freed_memory()
    model = _model(head_only)
    cl = mode not in ("plain", "plain+env")
    if cl:
        model = model.to(memory_format=torch.channels_last)
    g = torch.Generator().manual_seed(0)
    xs = torch.randn(batch * steps, 3, size, size, generator=g)
    if cl:
        xs = xs.contiguous(memory_format=torch.channels_last)
    ys = torch.randint(0, 10, (batch * steps,), generator=g)
    params = [p for p in model.parameters() if p.requires_grad]
    opt = torch.optim.AdamW(params, lr=1e-4)
    crit = nn.CrossEntropyLoss(label_smoothing=0.1)
    model.train()
    if mode.startswith("plain"):
        def run(n):
            for i in range(n):
                x, y = xs[i * batch:(i + 1) * batch], ys[i * batch:(i + 1) * batch]
                opt.zero_grad()
                loss = crit(model(x), y)
                loss.backward()
                opt.step()
        run(2)
        t = time.perf_counter()
        run(steps)
        return {"images_per_s": batch * steps / (time.perf_counter() - t)}
    s = StepSettings("cpu", channels_last=True, amp_dtype=None, scaler=None, grad_clip=None)
    if mode == "ftedge":
        loader = [(xs[i * batch:(i + 1) * batch], ys[i * batch:(i + 1) * batch])
                  for i in range(steps)]
    else:
        loader = _real_loader(size, batch, steps)
    for i in range(2):  # warm-up, as for the plain loop
        train_step(model, xs[i * batch:(i + 1) * batch], ys[i * batch:(i + 1) * batch],
                   optimizer=opt,
                   criterion=crit, s=s)
    t = time.perf_counter()
    stats = train_one_epoch(model, loader, opt, criterion=crit, s=s, before_step=lambda: None,
                            after_step=lambda st: None)
    dt = time.perf_counter() - t
    return {"images_per_s": stats.seen / dt, "data_wait_frac": stats.wait_s / dt}


def _real_loader(size: int, batch: int, steps: int):
    """ftedge's own loader over the digits, trimmed to `steps` batches."""
    from ftedge.config import build_tune_config
    from ftedge.data.demo import write_demo_data
    from ftedge.models import get_spec, preprocessing_contract
    from ftedge.training.data_setup import prepare_data, train_loader
    from ftedge.training.dist import DistContext

    root = Path(tempfile.mkdtemp()) / "digits"
    write_demo_data(root)
    cfg = build_tune_config(None, {"data": {"path": str(root)},
                                   "train": {"batch_size": batch}})
    contract = preprocessing_contract(get_spec("efficientnet_lite0"), size)
    data = prepare_data(cfg, round(1.5 * size), None)
    loader = train_loader(data, contract, cfg, ctx=DistContext(), device="cpu")
    return _Limited(loader, steps)


class _Limited:
    """Iterate the first `n` batches of a DataLoader, loading them live (not prefetched)."""

    def __init__(self, loader, n):
        self.loader, self.n = loader, n

    def __iter__(self):
        import itertools

        return itertools.islice(iter(self.loader), self.n)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    ap.add_argument("--sizes", default="128,224")
    ap.add_argument("--batch", type=int, default=32)
    ap.add_argument("--steps", type=int, default=8)
    ap.add_argument("--_child", nargs=4, help=argparse.SUPPRESS)
    a = ap.parse_args()
    if a._child:
        mode, size, head = a._child[0], int(a._child[1]), a._child[2] == "head"
        print(json.dumps(measure(mode, size, a.batch, int(a._child[3]), head)))
        return
    rows = []
    cases = [(int(s), "full") for s in a.sizes.split(",")] + [(int(a.sizes.split(",")[-1]), "head")]
    for size, phase in cases:
        res = {}
        for mode in ("plain", "plain+env", "plain+cl", "ftedge", "ftedge+data"):
            if mode == "ftedge+data" and phase == "head":
                continue
            steps = a.steps * (4 if phase == "head" else 1)
            out = subprocess.run([sys.executable, __file__, "--batch", str(a.batch), "--_child",
                                  mode, str(size), phase, str(steps)],
                                 capture_output=True, text=True, check=True)
            res[mode] = json.loads(out.stdout.strip().splitlines()[-1])
        rows.append((size, phase, res))
    print(f"\nEfficientNet-Lite0 training step, batch {a.batch}, CPU, images/s (higher is better)")
    print(f"{'px':>4} {'phase':>5} {'plain':>7} {'plain+env':>9} {'plain+cl':>8} {'ftedge':>7} "
          f"{'ftedge/plain+cl':>15} {'ftedge/plain':>12} {'ftedge+data':>11} {'data wait':>9}")
    for size, phase, r in rows:
        p, pe, pc, f = (r[m]["images_per_s"] for m in ("plain", "plain+env", "plain+cl", "ftedge"))
        d = r.get("ftedge+data")
        dtxt = (f"{d['images_per_s']:11.1f} {100 * d['data_wait_frac']:8.1f}%" if d else
                f"{'-':>11} {'-':>9}")
        print(f"{size:4d} {phase:>5} {p:7.1f} {pe:9.1f} {pc:8.1f} {f:7.1f} {f / pc:15.2f} "
              f"{f / p:12.2f} {dtxt}")


if __name__ == "__main__":
    main()
