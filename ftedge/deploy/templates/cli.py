"""The command line of deploy/infer.py: check the artifact, preprocess, batch, run, print top-k.

Template piece. In the generated script RUNTIME, model_files and Model come from the
runtime's piece (above the marker they are imported from the ONNX Runtime one, for
importability only).
"""

import argparse
import json
import sys
from pathlib import Path

import numpy as np

from ftedge.deploy.templates.artifact import (ArtifactError, load_manifest, reexport_hint,
                                              verify_file)
from ftedge.deploy.templates.labels import escape_label
from ftedge.deploy.templates.preprocess import (IMAGE_EXTENSIONS, ImageDecodeError,
                                                check_contract, preprocess_file)
from ftedge.deploy.templates.runner_onnxruntime import REQUIRES, RUNTIME, Model, model_files

# ---- ftedge template body ----

EXIT_OK, EXIT_NO_IMAGE, EXIT_ARTIFACT = 0, 1, 2


def parse_args(argv):
    here = Path(__file__).resolve().parent
    p = argparse.ArgumentParser(
        description=f"Classify images with this ftedge artifact ({RUNTIME}); needs only "
                    f"{REQUIRES}, numpy and Pillow.",
        epilog="exit status: 0 at least one image classified, 1 no image could be read, "
               "2 the artifact cannot be used (or bad arguments)")
    p.add_argument("images", nargs="+", help="image files or folders (searched recursively)")
    p.add_argument("--artifact", type=Path, default=here.parent,
                   help="the artifact folder holding manifest.json (default: %(default)s)")
    p.add_argument("--topk", type=int, default=5, help="classes to print per image")
    p.add_argument("--batch", type=int, default=None,
                   help="images per inference (default: the artifact's fixed batch, else its "
                        "profile's max_batch)")
    p.add_argument("--json", action="store_true", help="print one JSON list on stdout")
    args = p.parse_args(argv)
    if args.topk < 1:
        p.error("--topk must be at least 1")
    if args.batch is not None and args.batch < 1:
        p.error("--batch must be at least 1")
    return args


def expand(paths):
    """Files as given; folders -> their image files, sorted."""
    out = []
    for path in map(Path, paths):
        if path.is_dir():
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


def run_batch(model, arrays, batch, fixed):
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


def top_k(logits, classes, k, temperature=1.0):
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


def classify(args):
    """Top-k for every readable image, batch by batch (only one batch in memory at a time)."""
    manifest = load_manifest(args.artifact)
    for name in model_files(manifest):
        verify_file(args.artifact, manifest, name)
    contract, classes = manifest["preprocessing"], manifest["classes"]
    try:
        check_contract(contract)
    except ValueError as e:
        raise ArtifactError(str(e), "use the infer.py written with this artifact") from None
    batch = batch_size(manifest, args.batch)
    fixed = manifest["input_shape"][0] != "dynamic"
    k = min(args.topk, len(classes))
    temperature, note = temperature_of(manifest)
    if note:
        print(note, file=sys.stderr)
    model = Model(args.artifact, manifest)
    unknown = manifest.get("unknown")
    if not unknown:
        print("note: no unknown score: this artifact was exported without one; export it "
              "again with a newer ftedge to reject images of none of its classes",
              file=sys.stderr)
    results, pending, n_read = [], [], 0
    for path in expand(args.images):
        result = {"image": path}
        results.append(result)
        try:
            pending.append((result, preprocess_file(path, contract)))
            n_read += 1
        except ImageDecodeError as e:
            result["error"] = str(e)
            print(f"{path}: cannot read: {e}", file=sys.stderr)
        if len(pending) == batch:
            _finish(model, pending, batch, fixed, classes, k, temperature, unknown)
    if pending:
        _finish(model, pending, batch, fixed, classes, k, temperature, unknown)
    return results, n_read


def _finish(model, pending, batch, fixed, classes, k, temperature, unknown):
    logits, scores = run_batch(model, [a for _, a in pending], batch, fixed)
    if unknown and scores is None:
        raise ArtifactError("the manifest records an unknown score but the model has no "
                            f"{unknown.get('output')!r} output", "export the artifact again")
    for i, ((result, _), row) in enumerate(zip(pending, logits)):
        result["temperature"] = temperature
        result["top"] = top_k(row, classes, k, temperature)
        result["unknown"] = unknown_decision(scores[i], unknown) if unknown else None
    pending.clear()


def main(argv=None):
    args = parse_args(argv)
    try:
        results, n_read = classify(args)
    except ArtifactError as e:
        print(f"error: {e}" + (f"\n  how to fix: {e.hint}" if e.hint else ""), file=sys.stderr)
        return EXIT_ARTIFACT
    report(results, args.json)
    if n_read == 0:
        print(f"error: none of the {len(results)} image(s) could be read", file=sys.stderr)
        return EXIT_NO_IMAGE
    return EXIT_OK
