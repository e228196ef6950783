"""The command line and Python API of deploy/infer.py: check the artifact, decode and
preprocess on threads while the model runs, print top-k.

Template piece. In the generated script RUNTIME, model_files and Model come from the
runtime's piece (above the marker they are imported from the ONNX Runtime one, for
importability only).
"""

import argparse
import json
import os
import sys
from collections import deque
from concurrent.futures import ThreadPoolExecutor
from contextlib import closing
from pathlib import Path

import numpy as np
from PIL import Image

from ftedge.deploy.templates.artifact import (ArtifactError, load_manifest, reexport_hint,
                                              usable_cores, verify_file)
from ftedge.deploy.templates.labels import escape_label
from ftedge.deploy.templates.preprocess import (IMAGE_EXTENSIONS, ImageDecodeError,
                                                check_contract, decode_file, model_input)
from ftedge.deploy.templates.runner_onnxruntime import REQUIRES, RUNTIME, Model, model_files

# ---- ftedge template body ----

EXIT_OK, EXIT_NO_IMAGE, EXIT_ARTIFACT, EXIT_OUTPUT = 0, 1, 2, 3


def parse_args(argv):
    here = Path(__file__).resolve().parent
    p = argparse.ArgumentParser(
        description=f"Classify images with this ftedge artifact ({RUNTIME}); needs only "
                    f"{REQUIRES}, numpy and Pillow.",
        epilog="exit status: 0 at least one image classified, 1 no image could be read, "
               "2 the artifact cannot be used (or bad arguments), 3 the results could not be "
               "written (a full disk, or a closed pipe such as | head)")
    p.add_argument("images", nargs="+", help="image files or folders (searched recursively)")
    p.add_argument("--artifact", type=Path, default=here.parent,
                   help="the artifact folder holding manifest.json (default: %(default)s)")
    p.add_argument("--topk", type=int, default=5, help="classes to print per image")
    p.add_argument("--batch", type=int, default=None,
                   help="images per inference (default: the artifact's fixed batch, else its "
                        "profile's max_batch)")
    p.add_argument("--workers", type=int, default=None,
                   help="threads decoding images while the model runs (default: one per core)")
    p.add_argument("--json", action="store_true", help="print one JSON list on stdout")
    args = p.parse_args(argv)
    if args.topk < 1:
        p.error("--topk must be at least 1")
    if args.batch is not None and args.batch < 1:
        p.error("--batch must be at least 1")
    if args.workers is not None and args.workers < 1:
        p.error("--workers must be at least 1")
    return args


def expand(paths):
    """Files as given; folders -> their image files, sorted."""
    out = []
    for path in map(Path, paths):
        try:
            folder = path.is_dir()
        except OSError:  # a name too long, a link loop: reported as unreadable when decoded
            folder = False
        if folder:
            out += sorted(str(p) for p in path.rglob("*") if p.suffix.lower() in IMAGE_EXTENSIONS)
        else:
            out.append(str(path))
    return out


def batch_size(manifest, asked):
    """The fixed batch of the model, else `asked`, else the profile's max_batch."""
    fixed = manifest["input_shape"][0]
    if fixed != "dynamic":
        if asked not in (None, int(fixed)):
            raise ArtifactError(f"this artifact takes batches of exactly {fixed} images",
                                f"leave out --batch, or pass --batch {fixed}")
        return int(fixed)
    return asked or int((manifest.get("profile") or {}).get("max_batch", 1))


def run_batch(model, arrays, batch, *, fixed):
    """(logits, unknown scores or None) for up to `batch` arrays; a fixed-batch model gets a
    zero-padded chunk."""
    chunk = np.stack(arrays)
    n = len(chunk)
    if fixed and n < batch:
        chunk = np.concatenate([chunk, np.zeros((batch - n, *chunk.shape[1:]), chunk.dtype)])
    logits, scores = model.infer_scored(chunk)
    return np.asarray(logits)[:n], (None if scores is None else np.asarray(scores)[:n])


def unknown_decision(score, unknown):
    """The manifest's unknown rule: an image scoring above the threshold is of none of the
    classes (the threshold accepts manifest["unknown"]["target_tpr"] of the val images)."""
    threshold = float(unknown["threshold"])
    return {"score": float(score), "threshold": threshold, "is_unknown": float(score) > threshold}


def temperature_of(manifest):
    """The artifact's calibration temperature T (probabilities are softmax(logits / T), fitted
    at export on this artifact's own val logits), and a note when it has none (T = 1)."""
    record = manifest.get("calibration")
    if record is None:
        return 1.0, ("note: the manifest has no calibration (exported by an older ftedge): "
                     "probabilities use T = 1")
    t = record.get("temperature") if isinstance(record, dict) else None
    if isinstance(t, bool) or not isinstance(t, (int, float)) or not t > 0 or t == float("inf"):
        raise ArtifactError("the manifest's calibration temperature is damaged",
                            reexport_hint(manifest))
    return float(t), None


def top_k(logits, classes, k, *, temperature=1.0):
    """The k most probable classes, probabilities softmax(logits / temperature)."""
    z = logits.astype(np.float64)
    p = np.exp((z - z.max()) / temperature)
    p /= p.sum()
    order = np.argsort(-p, kind="stable")[:k]
    return [{"index": int(i), "class": classes[i], "probability": float(p[i]),
             "logit": float(z[i])} for i in order]


def report(results, as_json, out=None):
    out = out or sys.stdout
    if as_json:
        json.dump(results, out, ensure_ascii=False, indent=2)
        out.write("\n")
        return
    for r in results:
        if "error" in r:
            continue  # already on stderr
        out.write(f"{r['image']}\n")
        u = r.get("unknown")
        if u and u["is_unknown"]:
            out.write(f"  UNKNOWN: none of the classes (unknown score {u['score']:.6g} > "
                      f"threshold {u['threshold']:.6g}); nearest classes:\n")
        for t in r["top"]:
            out.write(f"  {t['probability']:.4f}  {escape_label(t['class'])}\n")  # one line each


def check_frame(frame, where="frame"):
    """Refuse (ValueError) what is not an HxWx3 uint8 RGB array (a camera's or video
    decoder's frame): a float or CHW array cannot be told apart from other layouts."""
    how = ("pass an HxWx3 uint8 RGB array (OpenCV's BGR frames: frame[..., ::-1]; "
           "CHW: frame.transpose(1, 2, 0))")
    if not isinstance(frame, np.ndarray) or frame.dtype != np.uint8 or frame.ndim != 3 \
            or frame.shape[2] != 3 or 0 in frame.shape:
        what = (f"a {type(frame).__name__}" if not isinstance(frame, np.ndarray)
                else f"dtype {frame.dtype}, shape {frame.shape}")
        raise ValueError(f"{where}: {what}; {how}")


def frame_image(frame, where="frame"):
    """A checked frame (check_frame) as a PIL image."""
    check_frame(frame, where)
    return Image.fromarray(np.ascontiguousarray(frame))


def prepared_batches(inputs, prepare, *, batch, workers, item_errors=(), window=None):
    """Yield (group, arrays) for each batch of `inputs`, in input order, while `prepare` runs
    on `workers` threads: Pillow releases the GIL while it decodes and resizes, and the
    runtimes while they infer, so the next images are prepared while the caller runs this
    batch. `arrays` holds the prepared arrays; `group` is [(input, index into arrays, or the
    exception of `item_errors` that input raised)]. At most `window` inputs (default: two
    batches plus one per worker) wait prepared or preparing, so memory stays bounded however
    many come; any other exception stops the whole run. ftedge's runtime/overlap.py runs
    this same generator."""
    window = window or 2 * batch + workers
    source, pending, end = iter(inputs), deque(), object()
    with ThreadPoolExecutor(workers, thread_name_prefix="prepare") as pool:
        def top_up():
            while len(pending) < window:
                item = next(source, end)
                if item is end:
                    return
                pending.append((item, pool.submit(prepare, item)))

        try:
            top_up()
            while pending:
                group, arrays = [], []
                while pending and len(arrays) < batch:
                    item, future = pending.popleft()
                    try:
                        arrays.append(future.result())
                        group.append((item, len(arrays) - 1))
                    except item_errors as e:
                        group.append((item, e))
                    top_up()  # the pool works on while this batch runs
                yield group, arrays
        finally:  # an error, Ctrl-C or a consumer that stops early: drop the queued work
            for _, future in pending:
                future.cancel()


def overlapped(model, inputs, prepare, *, batch, fixed, workers):
    """(input, (logits row, unknown score or None) or ImageDecodeError) for every input, in
    input order; images are decoded on threads while the model runs (prepared_batches)."""
    with closing(prepared_batches(inputs, prepare, batch=batch, workers=workers,
                                  item_errors=(ImageDecodeError,))) as batches:
        for group, arrays in batches:
            logits, scores = (run_batch(model, arrays, batch, fixed=fixed) if arrays
                              else (None, None))
            for item, slot in group:
                yield item, slot if isinstance(slot, Exception) else (
                    logits[slot], None if scores is None else scores[slot])


class Classifier:
    """This artifact from Python: `import infer; infer.Classifier().classify(inputs)`.

    Inputs are image file paths and/or frames (HxWx3 uint8 RGB arrays); a frame takes the
    same preprocessing as a decoded file, so the same pixels give the same result.
    """

    def __init__(self, artifact=None, batch=None, workers=None):
        self.folder = Path(artifact) if artifact else Path(__file__).resolve().parent.parent
        manifest = load_manifest(self.folder)
        for name in model_files(manifest):
            verify_file(self.folder, manifest, name)
        self.contract, self.classes = manifest["preprocessing"], manifest["classes"]
        try:
            check_contract(self.contract)
        except ValueError as e:
            raise ArtifactError(str(e), "use the infer.py written with this artifact") from None
        self.input_format = manifest.get("input_format", "normalized")
        self.input_layout = manifest.get("input_layout", "NCHW")
        if self.input_format not in ("normalized", "float255", "uint8"):
            raise ArtifactError(f"input_format {self.input_format!r} is unknown to this "
                                "script", "use the infer.py written with this artifact")
        self.batch = batch_size(manifest, batch)
        self.fixed = manifest["input_shape"][0] != "dynamic"
        self.workers = workers or usable_cores()
        self.temperature, note = temperature_of(manifest)
        if note:
            print(note, file=sys.stderr)
        self.model = Model(self.folder, manifest)
        self.unknown = manifest.get("unknown")
        if not self.unknown:
            print("note: no unknown score: this artifact was exported without one; export it "
                  "again with a newer ftedge to reject images of none of its classes",
                  file=sys.stderr)

    def prepare(self, item):
        """One input (a path, or (index, frame)) -> the artifact's input: float32 CHW, or
        for a graph that normalises itself, its 8-bit pixels (manifest input_format)."""
        if isinstance(item, tuple):
            img = frame_image(item[1], f"frame {item[0]}")
        else:
            img = decode_file(item, self.contract)
        return model_input(img, self.contract, input_format=self.input_format,
                           layout=self.input_layout)

    def classify(self, inputs, topk=5):
        """One dict per input, in order: {"image": path} or {"frame": index}, with "top"
        (k classes, most probable first) or "error" (a file that cannot be read).

        Raises ValueError, before any work, for a frame that is not HxWx3 uint8."""
        items = [(i, x) if isinstance(x, np.ndarray) else str(x) for i, x in enumerate(inputs)]
        for item in items:
            if isinstance(item, tuple):  # checked only: the copy into Pillow is prepare's
                check_frame(item[1], f"frame {item[0]}")
        k = min(topk, len(self.classes))
        results = []
        for item, out in overlapped(self.model, items, self.prepare, batch=self.batch,
                                    fixed=self.fixed, workers=self.workers):
            result = {"frame": item[0]} if isinstance(item, tuple) else {"image": item}
            if isinstance(out, Exception):
                result["error"] = str(out)
            else:
                row, score = out
                if self.unknown and score is None:
                    raise ArtifactError("the manifest records an unknown score but the model "
                                        f"has no {self.unknown.get('output')!r} output",
                                        "export the artifact again")
                result["temperature"] = self.temperature
                result["top"] = top_k(row, self.classes, k, temperature=self.temperature)
                result["unknown"] = (unknown_decision(score, self.unknown) if self.unknown
                                     else None)
            results.append(result)
        return results


def classify(args):
    """Top-k for every image the arguments name; unreadable ones reported on stderr."""
    classifier = Classifier(args.artifact, args.batch, args.workers)
    results = classifier.classify(expand(args.images), args.topk)
    for r in results:
        if "error" in r:
            print(f"{r['image']}: cannot read: {r['error']}", file=sys.stderr)
    return results, sum("top" in r for r in results)


def main(argv=None):
    args = parse_args(argv)
    try:
        results, n_read = classify(args)
    except ArtifactError as e:
        print(f"error: {e}" + (f"\n  how to fix: {e.hint}" if e.hint else ""), file=sys.stderr)
        return EXIT_ARTIFACT
    try:
        report(results, args.json)
        sys.stdout.flush()
    except OSError as e:  # `| head` closed the pipe, or stdout is on a full disk (/dev/full)
        # what is still buffered goes nowhere, instead of failing again at exit
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        if not isinstance(e, BrokenPipeError):  # a closed pipe: the reader took what it wanted
            print(f"error: cannot write the results: {e.strerror or e}\n  how to fix: free "
                  "some space, or send the output to another disk (> FILE)", file=sys.stderr)
        return EXIT_OUTPUT
    if n_read == 0:
        print(f"error: none of the {len(results)} image(s) could be read", file=sys.stderr)
        return EXIT_NO_IMAGE
    return EXIT_OK
