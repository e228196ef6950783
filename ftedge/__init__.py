"""ftedge: fine-tune a lightweight pretrained classifier and prove it works on the edge device.

The Python API mirrors the command line: `ftedge.tune(...)`, `ftedge.evaluate(...)`,
`ftedge.predict(...)`, `ftedge.audit_dataset(...)`, `ftedge.write_demo_data(...)`,
`ftedge.demo(...)`, `ftedge.export_run(...)`, `ftedge.bench_artifacts(...)` (`export` and
`bench` are the stage packages, hence the longer names). Heavy imports happen on first use, so
`import ftedge` stays cheap.
"""

from __future__ import annotations

__version__ = "0.1.0"

_API = {
    "tune": ("ftedge.stages.tune", "tune"),
    "evaluate": ("ftedge.stages.inference", "evaluate"),
    "predict": ("ftedge.stages.inference", "predict"),
    "load_run": ("ftedge.runtime.pytorch.runner", "load_run"),
    "open_model": ("ftedge.runtime.artifact", "open_model"),
    "audit_dataset": ("ftedge.data.audit", "audit_dataset"),
    "write_demo_data": ("ftedge.data.demo", "write_demo_data"),
    "demo": ("ftedge.pipeline", "demo"),
    "build_model": ("ftedge.models", "build_model"),
    "quantize": ("ftedge.stages.quantize", "quantize"),
    "export_run": ("ftedge.stages.export.exporter", "export_run"),
    "load_artifact": ("ftedge.runtime.artifact", "load_artifact"),
    "bench_artifacts": ("ftedge.stages.bench.bench", "bench"),
}

__all__ = ["__version__", *_API]


def __getattr__(name: str):
    if name in _API:
        import importlib

        module, attr = _API[name]
        return getattr(importlib.import_module(module), attr)
    raise AttributeError(f"module 'ftedge' has no attribute {name!r}")
