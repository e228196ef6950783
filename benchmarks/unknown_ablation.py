#!/usr/bin/env python3
"""Which unknown score to ship: every candidate, appended to the run's own graphs, measured
from the runtimes' outputs on near- and far-unknowns.

For the run's FP32 graph (model.fp32.onnx, exported from best.pt when missing) and its INT8
Q/DQ graph (model.int8.onnx, else model.ptq.int8.onnx, or --int8), the score parameters are
fitted on the train split's features as ONNX Runtime computes them from that graph (what
`ftedge export` does), all five scores are
appended to the graph as outputs (ftedge/graph/unknown.py), and the graph runs on the val
split (knowns) and on the two unknown folders: FP32 in ONNX Runtime, INT8 in ONNX Runtime and
in OpenVINO (CPU, the openvino-cpu profile's compile options). AUROC (sklearn) and FPR at 95%
TPR (the fraction of unknowns accepted when 95% of the val images are) per score, runtime
and case; --latency adds each score's size and its cost per image (ONNX Runtime, batch 1,
interleaved with the graph without it).

    python benchmarks/unknown_ablation.py /work/runs/f12-ood \\
        --near /work/data/real/unknown-near --far /work/data/real/unknown-far --latency
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from pathlib import Path

import numpy as np


def image_files(folder: Path) -> list:
    from ftedge.data.folder import Sample
    from ftedge.data.images import IMAGE_EXTENSIONS

    files = sorted(p for p in folder.rglob("*") if p.suffix.lower() in IMAGE_EXTENSIONS)
    if not files:
        raise SystemExit(f"{folder} holds no images")
    return [Sample(p, -1) for p in files]


def fpr_at_tpr(known: np.ndarray, unknown: np.ndarray, tpr: float = 0.95) -> float:
    from ftedge.metrics import ood_rates

    return ood_rates(known, unknown, target_tpr=tpr)["fpr_at_tpr"]


def auroc(known: np.ndarray, unknown: np.ndarray) -> float:
    from ftedge.metrics import ood_rates

    return ood_rates(known, unknown)["auroc"]


def run_graph(model, x: np.ndarray, runtime: str, outputs: list[str]) -> dict:
    """{output name: array} of `model` on `x`, batch 32, in ONNX Runtime or OpenVINO."""
    import onnx

    from ftedge.runtime.onnxruntime.runner import inference_session

    got: dict[str, list] = {n: [] for n in outputs}
    if runtime == "onnxruntime":
        session = inference_session(model)
        for i in range(0, len(x), 32):
            for n, v in zip(outputs, session.run(outputs, {"input": x[i:i + 32]})):
                got[n].append(v)
    else:
        import openvino as ov

        from ftedge.runtime.profiles import load_profile

        hint = load_profile("openvino-cpu").inference_precision
        with tempfile.TemporaryDirectory() as tmp:
            onnx.save(model, f"{tmp}/m.onnx")
            core = ov.Core()
            compiled = core.compile_model(core.read_model(f"{tmp}/m.onnx"), "CPU",
                                          {"INFERENCE_PRECISION_HINT": hint} if hint else {})
        request = compiled.create_infer_request()
        for i in range(0, len(x), 32):
            request.infer({0: x[i:i + 32]})
            for n in outputs:
                got[n].append(request.get_tensor(n).data.copy())
    return {n: np.concatenate(v) for n, v in got.items()}


def fitted_graph(path: Path, train_x: np.ndarray, train_y: np.ndarray, n_classes: int, k: int):
    """The graph with every score appended (outputs score_<kind>), fitted on its train features."""
    import onnx

    from ftedge.graph.unknown import SCORES, append_score, feature_tensor, fit_score, with_outputs

    model = onnx.load(str(path))
    feats = feature_tensor(model)
    f = run_graph(with_outputs(model, [feats]), train_x, "onnxruntime", [feats])[feats]
    params = {kind: fit_score(kind, f, train_y, n_classes=n_classes, k=k) for kind in SCORES}
    scored = model
    for kind in SCORES:
        scored = append_score(scored, kind, params[kind], output=f"score_{kind}")
    return model, scored, params


def latency_rows(model, params: dict, size: tuple, runs: int) -> list[dict]:
    """Each score's added bytes and its extra ms per image (ORT, batch 1, interleaved)."""
    from ftedge.graph.unknown import SCORES, append_score
    from ftedge.runtime.onnxruntime.runner import inference_session

    x = np.random.default_rng(0).normal(size=(1, *size)).astype(np.float32)
    base = inference_session(model)
    rows = []
    for kind in SCORES:
        scored = append_score(model, kind, params[kind])
        s = inference_session(scored)
        t = {"base": [], "scored": []}
        for _ in range(runs):
            for name, sess in (("base", base), ("scored", s)):
                t0 = time.perf_counter()
                sess.run(None, {"input": x})
                t[name].append(time.perf_counter() - t0)
        rows.append({"score": kind,
                     "added_bytes": scored.ByteSize() - model.ByteSize(),
                     "base_ms": 1e3 * float(np.median(t["base"])),
                     "extra_ms": 1e3 * float(np.median(t["scored"]) - np.median(t["base"]))})
    return rows


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("run", type=Path)
    p.add_argument("--near", type=Path, required=True)
    p.add_argument("--far", type=Path, required=True)
    p.add_argument("--k", type=int, default=None, help="k-NN's k (default: ftedge's)")
    p.add_argument("--latency", action="store_true")
    p.add_argument("--runs", type=int, default=50, help="latency runs per graph")
    p.add_argument("--int8", help="the run's INT8 graph (default: model.int8.onnx, else "
                                  "model.ptq.int8.onnx)")
    p.add_argument("--json", type=Path, help="also write the rows here")
    args = p.parse_args(argv)

    from ftedge.data.transforms import preprocess_samples
    from ftedge.formats.run import FP32_ONNX, RunFolder
    from ftedge.graph.unknown import SCORES
    from ftedge.config import OPSET
    from ftedge.quant.onnx_export import export_fp32
    from ftedge.runtime.pytorch.runner import load_run

    loaded = load_run(args.run)
    folder = RunFolder(args.run)
    train = folder.samples("train", loaded.classes)
    sets = {"val": folder.samples("val", loaded.classes), "near": image_files(args.near),
            "far": image_files(args.far)}
    prep = lambda s: preprocess_samples(s, loaded.contract)  # noqa: E731
    train_x, train_y = prep(train), np.array([s.label for s in train])
    x = {name: prep(s) for name, s in sets.items()}
    print(f"{args.run}: {len(train)} train, {len(sets['val'])} val, {len(sets['near'])} near, "
          f"{len(sets['far'])} far images", file=sys.stderr)
    all_x = np.concatenate([x["val"], x["near"], x["far"]])
    cut = np.cumsum([len(x["val"]), len(x["near"])])

    fp32 = folder.file(FP32_ONNX)
    tmp = tempfile.TemporaryDirectory()
    if not fp32.is_file():
        fp32 = Path(tmp.name) / FP32_ONNX
        export_fp32(loaded, fp32, OPSET)
    int8 = folder.file(args.int8 or next(
        (n for n in ("model.int8.onnx", "model.ptq.int8.onnx") if folder.file(n).is_file()),
        "model.int8.onnx"))
    print(f"FP32 graph {fp32.name}, INT8 graph {int8.name}", file=sys.stderr)
    rows, lat = [], {}
    for graph_name, path, runtimes in (("FP32", fp32, ["onnxruntime"]),
                                       ("INT8", int8, ["onnxruntime", "openvino"])):
        model, scored, params = fitted_graph(path, train_x, train_y, len(loaded.classes), args.k)
        if args.latency:
            lat[graph_name] = latency_rows(model, params, tuple(loaded.contract["input_size"]),
                                           args.runs)
        for runtime in runtimes:
            out = run_graph(scored, all_x, runtime, [f"score_{k}" for k in SCORES])
            for kind in SCORES:
                known, near, far = np.split(out[f"score_{kind}"][:, 0], cut)
                rows.append({"score": kind, "graph": graph_name, "runtime": runtime,
                             "near_auroc": auroc(known, near), "near_fpr95": fpr_at_tpr(known, near),
                             "far_auroc": auroc(known, far), "far_fpr95": fpr_at_tpr(known, far)})
            print(f"  {graph_name} {runtime} done", file=sys.stderr)

    head = f"{'score':<12}{'graph/runtime':<18}{'near AUROC':>11}{'near FPR95':>11}" \
           f"{'far AUROC':>11}{'far FPR95':>11}"
    print(head)
    for kind in SCORES:
        for r in (r for r in rows if r["score"] == kind):
            print(f"{kind:<12}{r['graph'] + ' ' + r['runtime']:<18}{r['near_auroc']:>11.4f}"
                  f"{r['near_fpr95']:>11.4f}{r['far_auroc']:>11.4f}{r['far_fpr95']:>11.4f}")
    for graph_name, lrows in lat.items():
        print(f"\n{graph_name} graph, ONNX Runtime batch 1 ({args.runs} interleaved runs): "
              f"base {lrows[0]['base_ms']:.2f} ms")
        for r in lrows:
            print(f"  {r['score']:<12} +{r['added_bytes'] / 1e6:7.3f} MB  "
                  f"{r['extra_ms']:+.3f} ms/image")
    if args.json:
        args.json.write_text(json.dumps({"rows": rows, "latency": lat}, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
