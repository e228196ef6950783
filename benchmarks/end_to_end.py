"""End to end on camera-size inputs, before and after overlapping decode with inference.

On each artifact folder given (e.g. EfficientNet-Lite0 INT8 at 224 px, onnxruntime-cpu and
openvino-cpu), side by side in one run, in images per second:
- before: deploy/infer.py as it was (one image after the other: full decode, preprocess, then
  the batch through a dynamic-shape model; replayed here with the template's own decode and
  preprocess and the old runner bodies);
- after: the artifact's own generated deploy/infer.py (its Classifier: decode on a thread
  pool while the model runs, OpenVINO compiled per batch shape), and `ftedge.predict`;
- model only: the same Classifier's model on a ready batch, the ceiling.
Inputs: bench's camera-size test inputs (bench/camera.py): 1920x1080 and 4032x3024 JPEGs,
and raw 1920x1080 frames (after only: before, infer.py took files only). Goals (issue 22):
1080p JPEGs after >= 5x before; raw 1080p frames >= 0.5x the model alone. "before" decodes
in full and filters the whole image whatever the artifact's contract records; "after" and
predict follow the contract (a draft decode and reducing gap make them fast). predict's
figure includes opening the artifact (as `ftedge predict` does each call); pred-open leaves
it out (the model opened once with ftedge.open_model and passed to predict, as a stream does).

"bound" is what perfect overlap could reach on this machine: the cores shared by each
input's preparation (its CPU time, timed on one thread) and the model (the model-only
ceiling uses every core), 1 / (prepare / cores + 1 / model only); after/bound says how much
of it the pipeline gets, and a goal above the bound is out of reach on this machine.

Usage: python benchmarks/end_to_end.py ARTIFACT_DIR [ARTIFACT_DIR ...] [--images 32]
           [--rounds 2] [--workers N] [--batch N] [--no-predict]
"""

from __future__ import annotations

import argparse
import importlib.util
import tempfile
import time
from pathlib import Path

import numpy as np


def load_infer_script(folder: Path):
    spec = importlib.util.spec_from_file_location(f"infer_{folder.name}",
                                                  folder / "deploy" / "infer.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


class BeforeModel:
    """deploy/infer.py's runner bodies before this change: a dynamic-shape request fed a new
    tensor each call (OpenVINO), a plain session.run (ONNX Runtime)."""

    def __init__(self, folder: Path, manifest: dict):
        path = str(folder / manifest["artifact"])
        if manifest["runtime"] == "openvino":
            import openvino as ov

            config = {}
            hint = (manifest.get("profile") or {}).get("inference_precision")
            if hint:
                config["INFERENCE_PRECISION_HINT"] = hint
            self.request = ov.Core().compile_model(path, manifest["device"],
                                                   config).create_infer_request()
            self.infer = self._ov
        else:
            import onnxruntime as ort

            self.session = ort.InferenceSession(path, providers=["CPUExecutionProvider"])
            self.name = manifest["input_name"]
            self.infer = lambda b: self.session.run(None, {self.name: b})[0]

    def infer_scored(self, batch):
        """What infer.py's run_batch calls now: the old bodies had no unknown score."""
        return self.infer(batch), None

    def _ov(self, batch):
        dtype = np.uint8 if batch.dtype == np.uint8 else np.float32  # a pixel-input artifact
        self.request.infer({0: np.ascontiguousarray(batch, dtype=dtype)})
        return self.request.get_output_tensor(0).data.copy()


def before(infer, model, paths: list, contract: dict, batch: int, clf) -> float:
    """Images per second the way infer.py classified before: sequential decode, then a batch."""
    # the decode and resize as they were: a full decode and a filter over the whole image,
    # whatever decode mode and reducing gap a newer contract records
    plain = {k: v for k, v in contract.items() if k not in ("decode", "reducing_gap")}
    t0 = time.perf_counter()
    pending = []
    for p in paths:
        pending.append(infer.model_input(infer.load_image(p), plain,
                                         input_format=clf.input_format, layout=clf.input_layout))
        if len(pending) == batch:
            infer.run_batch(model, pending, batch, fixed=False)
            pending = []
    if pending:
        infer.run_batch(model, pending, batch, fixed=False)
    return len(paths) / (time.perf_counter() - t0)


def after(classifier, inputs: list) -> float:
    t0 = time.perf_counter()
    out = classifier.classify(inputs)
    assert all("top" in r for r in out), [r for r in out if "error" in r][:1]
    return len(inputs) / (time.perf_counter() - t0)


def via_predict(folder: Path, inputs: list, batch: int,
                workers: int | None) -> tuple[float, float]:
    """(img/s of one ftedge.predict call on the folder, opening the artifact included; img/s
    of a call on the model opened once before, as a stream calls it)."""
    import ftedge

    t0 = time.perf_counter()
    ftedge.predict(folder, inputs, batch=batch, workers=workers)
    whole = len(inputs) / (time.perf_counter() - t0)
    with ftedge.open_model(folder) as held:
        ftedge.predict(held, inputs[:batch], batch=batch, workers=workers)  # notes, warm-up
        t0 = time.perf_counter()
        ftedge.predict(held, inputs, batch=batch, workers=workers)
        return whole, len(inputs) / (time.perf_counter() - t0)


def prepare_seconds(clf, items: list, repeats: int = 3) -> float:
    """Median CPU seconds one input takes to prepare (decode, resize, the artifact's input),
    on one thread: the work that shares the cores with the model."""
    times = []
    for _ in range(repeats):
        for i, item in enumerate(items):
            t0 = time.thread_time()
            clf.prepare(item if isinstance(item, (str, Path)) else (i, item))
            times.append(time.thread_time() - t0)
    return float(np.median(times))


def model_only(model, shape: tuple, batch: int, seconds: float = 2.0,
               pixels: str = "normalized") -> float:
    rng = np.random.default_rng(0)
    x = (rng.integers(0, 256, (batch, *shape)).astype(np.uint8) if pixels == "uint8"
         else rng.standard_normal((batch, *shape)).astype(np.float32))
    for _ in range(3):
        model.infer(x)
    n, t0 = 0, time.perf_counter()
    while time.perf_counter() - t0 < seconds:
        model.infer(x)
        n += batch
    return n / (time.perf_counter() - t0)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("artifacts", type=Path, nargs="+")
    ap.add_argument("--images", type=int, default=32, help="inputs per measurement")
    ap.add_argument("--rounds", type=int, default=2)
    ap.add_argument("--workers", type=int, default=None)
    ap.add_argument("--batch", type=int, default=8)
    ap.add_argument("--no-predict", action="store_true", help="skip ftedge.predict")
    a = ap.parse_args()

    from ftedge.stages.bench.camera import SOURCE, write_camera_inputs
    from ftedge.stages.bench.system import environment
    from ftedge.formats.contract import describe
    from ftedge.deploy.templates.artifact import usable_cores
    from ftedge.io import read_json

    env = environment(None)
    print(f"CPU: {env.get('cpu')} ({env.get('cpu_count')} CPUs, {usable_cores()} usable); "
          f"inputs: {SOURCE}")
    with tempfile.TemporaryDirectory() as tmp:
        inputs = write_camera_inputs(Path(tmp), per_size=4)
        cycle = {k: [v[i % len(v)] for i in range(a.images)] for k, v in inputs.items()}
        for folder in a.artifacts:
            m = read_json(folder / "manifest.json")
            infer = load_infer_script(folder)
            clf = infer.Classifier(folder, batch=a.batch, workers=a.workers)
            old = BeforeModel(folder, m)
            ceiling = model_only(clf.model, tuple(m["input_shape"][1:]), a.batch,
                                 pixels=clf.input_format)
            print(f"\n{folder} ({m['runtime']} {m['precision']}, {m['input_shape'][-1]} px), "
                  f"batch {a.batch}, {clf.workers} decode threads; model only "
                  f"{ceiling:.1f} img/s\ncontract: {describe(clf.contract)}; input "
                  f"{clf.input_format} {clf.input_layout}")
            print(f"{'input':16} {'before':>8} {'after':>8} {'predict':>8} {'pred-open':>9} "
                  f"{'after/before':>12} {'after/model':>11} {'bound':>7} {'after/bound':>11}"
                  "   (img/s, median of rounds)")
            cores = usable_cores()  # `taskset -c 0` measures one core
            for kind, items in cycle.items():
                runs: dict[str, list] = {"before": [], "after": [], "predict": [], "open": []}
                for _ in range(a.rounds):
                    if kind.startswith("jpeg"):
                        runs["before"].append(before(infer, old, items, clf.contract, a.batch,
                                                          clf))
                    runs["after"].append(after(clf, items))
                    if not a.no_predict:
                        whole, past_open = via_predict(folder, items, a.batch, a.workers)
                        runs["predict"].append(whole)
                        runs["open"].append(past_open)
                med = {k: float(np.median(v)) if v else float("nan") for k, v in runs.items()}
                bound = 1 / (prepare_seconds(clf, inputs[kind]) / cores + 1 / ceiling)
                print(f"{kind:16} {med['before']:8.1f} {med['after']:8.1f} "
                      f"{med['predict']:8.1f} {med['open']:9.1f} "
                      f"{med['after'] / med['before']:12.2f} "
                      f"{med['after'] / ceiling:11.2f} {bound:7.1f} "
                      f"{med['after'] / bound:11.2f}")


if __name__ == "__main__":
    main()
