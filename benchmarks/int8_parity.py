"""How the INT8 export parity rule (stages/export/parity.py int8_agreement) was measured: each run's
INT8 graph exported for onnxruntime-cpu and openvino-cpu by `ftedge export` itself (their
layouts, the profiles' compile settings, parity.json), plus OpenVINO on the unchanged shared
graph, all against the export's reference (the QAT model's fake-quantized outputs) on the run's
val split.

Prints, per run and runtime, the exact top-1 agreement, the agreement the rule counts (a flip
between classes the reference ranks within the quantization noise of each other is allowed),
the noise (mean |logit change| between the QAT model and its float twin), and for every flip
the reference's logit gap between its top-1 and the artifact's class.

    python benchmarks/int8_parity.py RUN [RUN ...] [--ov-isa AVX2] [--out DIR]

Each RUN is a QAT run folder (`ftedge tune --qat`, or benchmarks/qat_steps.py's OUT/e<N>).
--ov-isa AVX2 makes OpenVINO run as on a CPU without VNNI (ONEDNN_MAX_CPU_ISA), where u8 x s8
pair sums saturate with 8-bit weights. Artifacts go to --out (default: a temporary folder).
"""

from __future__ import annotations

import argparse
import os
import tempfile
from pathlib import Path

import numpy as np


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("runs", type=Path, nargs="+", help="QAT run folders")
    ap.add_argument("--ov-isa", help="ONEDNN_MAX_CPU_ISA for OpenVINO, e.g. AVX2")
    ap.add_argument("--out", type=Path, help="where the exported artifacts go")
    args = ap.parse_args()
    if args.ov_isa:
        os.environ["ONEDNN_MAX_CPU_ISA"] = args.ov_isa  # read when OpenVINO loads its CPU plugin
    missing = [str(r) for r in args.runs if not (r / "qat_best.pt").is_file()]
    if missing:
        ap.error(f"not a QAT run (no qat_best.pt): {', '.join(missing)}")

    from ftedge.data.transforms import preprocess_samples
    from ftedge.stages.export.exporter import export_run
    from ftedge.runtime.openvino.target import compile_config
    from ftedge.stages.export.parity import int8_agreement, quantization_noise
    from ftedge.runtime.profiles import load_profile
    from ftedge.formats.run import RunFolder
    from ftedge.quant.reference import qat_reference
    from ftedge.runtime import infer_batches
    from ftedge.runtime.openvino.runner import OpenVinoRunner
    from ftedge.runtime.pytorch.runner import load_run

    out = args.out or Path(tempfile.mkdtemp(prefix="int8_parity_"))
    print(f"OpenVINO ISA limit: {args.ov_isa or 'none'}; artifacts in {out}")
    print("| run | runtime | images | exact agreement (flips) | noise (logit) "
          "| agreement within noise (flips beyond) "
          "| reference gap top-1 -> artifact's class, per flip |")
    print("|---|---|---|---|---|---|---|")
    for i, run in enumerate(args.runs):
        loaded = load_run(run)
        samples = RunFolder(loaded.path).samples("val", loaded.classes)
        x = preprocess_samples(samples, loaded.contract)
        ref = infer_batches(qat_reference(loaded), x)
        noise = quantization_noise(ref, infer_batches(qat_reference(loaded, quantized=False), x))
        rows = {}
        for target in ("onnxruntime-cpu", "openvino-cpu"):
            res = export_run(run, target, precision="int8", out=out / f"{i}-{target}", force=True,
                             log=lambda m: None)
            rows[target] = infer_batches(_runner_of(res.folder), x)
            p = res.manifest["parity"]
            assert abs(p["int8_noise_logit"] - noise) < 1e-4, (p["int8_noise_logit"], noise)
        profile = load_profile("openvino-cpu")
        rows["openvino, shared graph"] = infer_batches(
            OpenVinoRunner(run / "model.int8.onnx", device="CPU", config=compile_config(profile,
                                                                                        None)), x)
        for name, logits in rows.items():
            a = int8_agreement(ref, logits, noise)
            flips = ref.argmax(1) != logits.argmax(1)
            idx = np.arange(len(ref))
            gaps = (ref[idx, ref.argmax(1)] - ref[idx, logits.argmax(1)])[flips]
            shown = ", ".join(f"{g:.2f}" for g in sorted(gaps)[:10])
            shown += " ..." if len(gaps) > 10 else ""
            print(f"| {run} | {name} | {len(x)} | {1 - flips.mean():.4f} ({flips.sum()}) "
                  f"| {noise:.3f} | {a['top1_agreement_within_noise']:.4f} "
                  f"({a['flips_beyond_noise']}) | {shown} |", flush=True)


def _runner_of(folder: Path):
    from ftedge.stages.inference import open_model

    return open_model(folder).runner


if __name__ == "__main__":
    main()
