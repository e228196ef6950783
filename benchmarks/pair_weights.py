"""Pair-limited 8-bit weights against the 7-bit rule and plain 8 bits: does the finer grid pay?

x86 CPUs without VNNI multiply u8 activations by s8 weights with VPMADDUBSW, which adds the
products of input channels 2m and 2m+1 in 16 bits. ftedge keeps weights within [-64, 64]
(qat.weight_bits: 7) so no pair sum can overflow. The weaker condition that is enough is
|q_2m| + |q_2m+1| <= 128 per pair (exact under QEMU emulating a Haswell, and in OpenVINO limited
to AVX2 / AVX512_CORE, both measured). Its per-channel scale, the largest pair sum / 128, gives
a grid up to 2x finer than 7 bits. This script measures whether that buys top-1:

  qat      QAT alone from one finished run's best.pt (benchmarks/qat_steps.py's qat_only), per
           seed: pair-limited pointwise/Linear weights (other full convolutions stay 7-bit,
           depthwise 8-bit as always), the 7-bit default and 8-bit weights; prints ONNX Runtime
           top-1 of model.int8.onnx, its agreement with and mean |logit change| from the run's
           FP32 graph, and stops if a pair or 7-bit graph breaks the pair limit.
  requant  the same three weight grids applied post hoc to a QAT run's model.int8.onnx (no
           retraining): top-1 in ONNX Runtime on the run's val split.

    python benchmarks/pair_weights.py qat RUN --epochs 40 --seeds 0,1,2,3 --out DIR
    python benchmarks/pair_weights.py requant RUN [RUN ...]

Experimental: the pair rule is not an ftedge option (it measured no better than 7 bits).
"""

from __future__ import annotations

import argparse
import contextlib
import json
import sys
import tempfile
from pathlib import Path

import numpy as np

PAIR_LIMIT = 128  # 255 * 128 = 32640 fits a signed 16-bit pair sum


def pair_codes(w2, scale):
    """Per-row INT8 codes of a (out, K) weight matrix on `scale` with |q_2m| + |q_2m+1| <= 128:
    round, then take one step toward zero off the larger member of each pair still over."""
    import torch

    code = torch.clamp(torch.round(w2 / scale[:, None]), -128, 127)
    k = code.shape[1]
    if k % 2:
        code = torch.nn.functional.pad(code, (0, 1))
    a, b = code[:, 0::2], code[:, 1::2]
    while True:
        over = a.abs() + b.abs() > PAIR_LIMIT
        if not over.any():
            break
        fix_a = over & (a.abs() >= b.abs())
        a = torch.where(fix_a, a - torch.sign(a), a)
        b = torch.where(over & ~fix_a, b - torch.sign(b), b)
    return torch.stack([a, b], 2).reshape(code.shape[0], -1)[:, :k]


def pair_scale(w2):
    """Per-row scale that puts the largest pair sum at 128."""
    import torch

    if w2.shape[1] % 2:
        w2 = torch.nn.functional.pad(w2, (0, 1))
    s = (w2[:, 0::2].abs() + w2[:, 1::2].abs()).amax(1) / PAIR_LIMIT
    return torch.where(s > 0, s, torch.ones_like(s))


def _pair_fake_quantize_class():
    import torch
    from torch.ao.quantization import FakeQuantize

    class PairFakeQuantize(FakeQuantize):
        """Pointwise convolutions and Linear layers on the pair-limited grid (straight-through
        gradient); any other weight as the 7-bit quantizer it was built as. The snapped weights
        go through fake_quantize_per_channel_affine, so the TorchScript exporter still writes
        Q/DQ, and their codes are exactly the pair-limited ones."""

        def forward(self, X):
            if not (X.ndim == 2 or (X.ndim == 4 and tuple(X.shape[2:]) == (1, 1))):
                return super().forward(X)
            w2 = X.reshape(X.shape[0], -1)
            if self.observer_enabled[0] == 1:
                with torch.no_grad():
                    s = pair_scale(w2.detach())
                    self.scale.resize_(s.shape).copy_(s)
                    self.zero_point.resize_(s.shape).zero_()
            if self.fake_quant_enabled[0] != 1:
                return X
            with torch.no_grad():
                snapped = (pair_codes(w2.detach(), self.scale) * self.scale[:, None])
            out = X + (snapped.reshape(X.shape) - X).detach()
            return torch.fake_quantize_per_channel_affine(
                out, self.scale, self.zero_point.to(torch.int32), self.ch_axis, -128, 127)

    return PairFakeQuantize


@contextlib.contextmanager
def pair_rule():
    """While active, prepare_qat gives 7-bit layers pair-limited weights where they apply."""
    import ftedge.quant.qat as Q

    original, cls = Q.weight_quantizer, _pair_fake_quantize_class()

    def weight_quantizer(bits: int = 8):
        fq = original(bits)
        if bits == 7:
            fq.__class__ = cls
        return fq

    Q.weight_quantizer = weight_quantizer
    try:
        yield
    finally:
        Q.weight_quantizer = original


def max_pair_sum(graph: Path) -> int:
    """The largest |q_2m| + |q_2m+1| over the stored weights of non-grouped Conv/Gemm layers."""
    import onnx
    from onnx import numpy_helper

    model = onnx.load(str(graph))
    inits = {t.name: t for t in model.graph.initializer}
    users = {i: n for n in model.graph.node for i in n.input}
    worst = 0
    for n in model.graph.node:
        if n.op_type != "DequantizeLinear" or n.input[0] not in inits:
            continue
        q = numpy_helper.to_array(inits[n.input[0]]).astype(np.int64)
        user = users.get(n.output[0])
        group = next((a.i for a in user.attribute if a.name == "group"), 1) if user else 1
        if q.ndim < 2 or group > 1:
            continue
        k = q.reshape(q.shape[0], -1)
        k = np.pad(k, ((0, 0), (0, k.shape[1] % 2)))
        worst = max(worst, int((np.abs(k[:, 0::2]) + np.abs(k[:, 1::2])).max()))
    return worst


def _val(run: Path):
    from ftedge.data.transforms import preprocess_samples
    from ftedge.formats.run import RunFolder
    from ftedge.runtime.pytorch.runner import load_run

    loaded = load_run(run)
    samples = RunFolder(run).samples("val", loaded.classes)
    return preprocess_samples(samples, loaded.contract), np.array([s.label for s in samples])


def cmd_qat(args) -> None:
    sys.path.insert(0, str(Path(__file__).parent))
    from qat_steps import qat_only

    from ftedge.runtime.onnxruntime.runner import onnx_logits

    x = y = fp32 = None
    rows: dict[str, list[dict]] = {}
    for seed in args.seeds:
        for variant in args.variants:
            out = args.out / f"{variant}_s{seed}"
            bits = 8 if variant == "w8" else 7  # the pair rule replaces 7-bit quantizers
            settings = [f"train.seed={seed}", f"qat.weight_bits={bits}"]
            if not (out / f"e{args.epochs}" / "gate.json").is_file():
                with pair_rule() if variant == "pair" else contextlib.nullcontext():
                    qat_only(args.run, out / f"e{args.epochs}", args.epochs, settings)
            run = out / f"e{args.epochs}"
            if x is None:
                x, y = _val(run)
                fp32 = onnx_logits(run / "model.fp32.onnx", x)
            q = onnx_logits(run / "model.int8.onnx", x)
            row = {"variant": variant, "seed": seed, "int8": float((q.argmax(1) == y).mean()),
                   "fp32": float((fp32.argmax(1) == y).mean()),
                   "agreement": float((q.argmax(1) == fp32.argmax(1)).mean()),
                   "logit_change": float(np.abs(q - fp32).mean()),
                   "max_pair_sum": max_pair_sum(run / "model.int8.onnx")}
            rows.setdefault(variant, []).append(row)
            print(json.dumps(row), flush=True)
            if variant != "w8" and row["max_pair_sum"] > PAIR_LIMIT:
                raise SystemExit(f"{run}: a pair of weights sums to {row['max_pair_sum']} > "
                                 f"{PAIR_LIMIT}: the {variant} grid was not applied")
    print(f"\n{len(y)} val images (one image = {100 / len(y):.2f} points)\n")
    print("| weights | seeds | INT8 top-1 (ORT), mean | drop vs FP32, points | agreement | "
          "mean abs logit change | largest pair sum |")
    print("|---|---|---|---|---|---|---|")
    for variant, rs in rows.items():
        top = np.mean([r["int8"] for r in rs])
        print(f"| {variant} | {len(rs)} | {top:.4f} | {100 * (rs[0]['fp32'] - top):+.2f} | "
              f"{np.mean([r['agreement'] for r in rs]):.4f} | "
              f"{np.mean([r['logit_change'] for r in rs]):.3f} | "
              f"{max(r['max_pair_sum'] for r in rs)} |")


def requantize(src: Path, dst: Path, mode: str) -> None:
    """Put the weights of an INT8 graph's non-grouped Conv/Gemm layers on another grid, post hoc:
    `w7` everywhere, or `pair` for pointwise/Gemm and w7 for the other full convolutions (as
    QAT under pair_rule does); depthwise layers keep their codes."""
    import onnx
    import torch
    from onnx import numpy_helper

    model = onnx.load(str(src))
    inits = {t.name: t for t in model.graph.initializer}
    users = {i: n for n in model.graph.node for i in n.input}
    for n in model.graph.node:
        if n.op_type != "DequantizeLinear" or n.input[0] not in inits:
            continue
        q = numpy_helper.to_array(inits[n.input[0]]).astype(np.float64)
        user = users[n.output[0]]
        group = next((a.i for a in user.attribute if a.name == "group"), 1)
        if q.ndim < 2 or group > 1:
            continue
        pointwise = q.ndim == 2 or q.shape[2:] == (1, 1)
        s = numpy_helper.to_array(inits[n.input[1]]).astype(np.float64)
        w2 = torch.from_numpy((q * s.reshape([-1] + [1] * (q.ndim - 1))).reshape(q.shape[0], -1))
        if mode == "pair" and pointwise:
            scale = pair_scale(w2)
            code = pair_codes(w2, scale)
        else:
            scale = w2.abs().amax(1).clamp_min(1e-12) / 63.5  # NarrowWeightObserver's grid
            code = torch.clamp(torch.round(w2 / scale[:, None]), -64, 64)
        inits[n.input[0]].CopyFrom(numpy_helper.from_array(
            code.numpy().reshape(q.shape).astype(np.int8), n.input[0]))
        inits[n.input[1]].CopyFrom(numpy_helper.from_array(
            scale.numpy().astype(np.float32).reshape(s.shape), n.input[1]))
    onnx.save(model, str(dst))


def cmd_requant(args) -> None:
    from ftedge.runtime.onnxruntime.runner import onnx_logits

    totals: dict[str, int] = {}
    for run in args.runs:
        x, y = _val(run)
        with tempfile.TemporaryDirectory() as tmp:
            graphs = {"as trained": run / "model.int8.onnx"}
            for mode in ("w7", "pair"):
                graphs[mode] = Path(tmp) / f"{mode}.onnx"
                requantize(run / "model.int8.onnx", graphs[mode], mode)
            for name, g in graphs.items():
                right = int((onnx_logits(g, x).argmax(1) == y).sum())
                totals[name] = totals.get(name, 0) + right
                print(f"{run}: {name:10s} {right}/{len(y)} right, largest pair sum "
                      f"{max_pair_sum(g)}", flush=True)
    print("total right:", ", ".join(f"{k} {v}" for k, v in totals.items()))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    sub = ap.add_subparsers(dest="cmd", required=True)
    q = sub.add_parser("qat", help="QAT alone per seed with pair / 7-bit / 8-bit weights")
    q.add_argument("run", type=Path, help="a finished `ftedge tune` run (best.pt, config.yaml)")
    q.add_argument("--epochs", type=int, default=40)
    q.add_argument("--seeds", type=lambda s: [int(v) for v in s.split(",")], default=[0, 1, 2, 3])
    q.add_argument("--variants", type=lambda s: s.split(","), default=["pair", "w7", "w8"])
    q.add_argument("--out", type=Path, required=True)
    r = sub.add_parser("requant", help="the same grids applied post hoc to QAT graphs")
    r.add_argument("runs", type=Path, nargs="+", help="QAT run folders (model.int8.onnx)")
    args = ap.parse_args()
    if args.cmd == "qat" and set(args.variants) - {"pair", "w7", "w8"}:
        ap.error("--variants takes pair, w7, w8")
    (cmd_qat if args.cmd == "qat" else cmd_requant)(args)


if __name__ == "__main__":
    main()
