"""deploy/infer.py against `ftedge predict`, per artifact, on a run's whole val split.

For every ONNX Runtime / OpenVINO artifact folder given (default: all of RUN/exports/), runs
the artifact's own deploy/infer.py in an interpreter that cannot import ftedge or torch, runs
`ftedge predict` on the same artifact and images, and prints top-1 agreement and the largest
top-1 probability difference. With --deepstream, also exports RUN for a TensorRT target (off
the device: the ONNX and build plan) and prints the top-1 of DeepStream-style preprocessing
against the exact contract, as the export's parity.json records it.

    python benchmarks/deploy_agreement.py runs/demo [--deepstream jetson-orin-nano]
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
from pathlib import Path

import numpy as np

import ftedge
from ftedge.formats.artifact import read_manifest_dict
from ftedge.formats.run import RunFolder

BLOCKER = '''
import runpy, sys
class _Block:
    def find_spec(self, name, path=None, target=None):
        if name.split(".")[0] in ("ftedge", "torch", "torchvision"):
            raise ImportError(f"{name} is blocked: deploy/infer.py must not need it")
        return None
sys.meta_path.insert(0, _Block())
script = sys.argv[1]
sys.argv = sys.argv[1:]
runpy.run_path(script, run_name="__main__")
'''


def agreement(folder: Path, images: list[Path]) -> dict:
    with tempfile.TemporaryDirectory() as tmp:
        blocker = Path(tmp) / "block.py"
        blocker.write_text(BLOCKER)
        proc = subprocess.run([sys.executable, "-I", str(blocker),
                               str(folder / "deploy" / "infer.py"), *map(str, images),
                               "--json", "--topk", "1"], cwd=tmp, capture_output=True,
                              text=True, timeout=1800)
    if proc.returncode != 0:
        raise SystemExit(f"{folder}: infer.py failed: {proc.stderr[-2000:]}")
    theirs = json.loads(proc.stdout)
    ours = ftedge.predict(folder, images, topk=1)
    same = [a["top"][0]["class"] == b["top"][0]["class"] for a, b in zip(theirs, ours)]
    diff = [abs(a["top"][0]["probability"] - b["top"][0]["prob"]) for a, b in zip(theirs, ours)]
    return {"n": len(same), "top1_agreement": float(np.mean(same)),
            "max_top1_prob_diff": float(np.max(diff))}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("run", type=Path)
    ap.add_argument("artifacts", nargs="*", type=Path)
    ap.add_argument("--deepstream", metavar="TARGET", help="a TensorRT profile, e.g. jetson-orin-nano")
    a = ap.parse_args()
    folders = a.artifacts or sorted(p for p in (a.run / "exports").iterdir()
                                    if (p / "manifest.json").is_file())
    print("| artifact | runtime | precision | images | infer.py vs ftedge predict top-1 "
          "agreement | max top-1 prob diff |\n|---|---|---|---|---|---|")
    for folder in folders:
        m = read_manifest_dict(folder)
        if m["runtime"] == "tensorrt":
            continue
        images = [s.path.resolve() for s in RunFolder(a.run).samples("val", m["classes"])]
        r = agreement(folder.resolve(), images)
        print(f"| {folder.name} | {m['runtime']} | {m['precision']} | {r['n']} | "
              f"{r['top1_agreement']:.4f} | {r['max_top1_prob_diff']:.2e} |", flush=True)
    if a.deepstream:
        with tempfile.TemporaryDirectory() as tmp:
            for precision in ("fp32", "int8"):
                res = ftedge.export_run(a.run, a.deepstream, precision=precision,
                                        out=Path(tmp) / precision,
                                        log=lambda m: None)
                d = res.manifest["parity"]["deepstream_preprocessing"]
                print(f"DeepStream-style preprocessing, {a.deepstream} {precision} "
                      f"({d['graph']}, {d['n']} val images): top-1 {d['top1_deepstream_style']:.4f}"
                      f" vs exact contract {d['top1_exact_contract']:.4f} (agreement "
                      f"{d['top1_agreement']:.4f}; normalisation exact: "
                      f"{d['normalization_exact']})")


if __name__ == "__main__":
    main()
