"""`ftedge demo`: the whole pipeline on built-in data, as far as it is built."""

from __future__ import annotations

import importlib.util
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path

from ftedge.console import console
from ftedge.data.demo import write_demo_data
from ftedge.stages.tune import TuneResult, tune


def demo_config_path() -> Path:
    return Path(str(resources.files("ftedge") / "configs" / "demo.yaml"))


DEMO_TARGETS = ("onnxruntime-cpu", "openvino-cpu")
DEMO_PRECISIONS = ("fp32", "int8")


@dataclass
class DemoResult:
    tune: TuneResult
    exports: list = field(default_factory=list)  # ExportResult per target x precision
    report: dict | None = None  # the bench report of the exports
    report_dir: Path | None = None

    @property
    def run_dir(self) -> Path:
        return self.tune.run_dir


def export_local_targets(run: Path) -> list:
    """The demo's artifacts: ONNX Runtime and OpenVINO CPU, FP32 and INT8."""
    from ftedge.stages.export.exporter import export_run
    from ftedge.stages.export.parity import agreement_line

    exports = []
    for target in DEMO_TARGETS:
        if target.startswith("openvino") and importlib.util.find_spec("openvino") is None:
            console.print(f"[yellow]skipping {target}[/]: OpenVINO is not installed "
                          "(pip install -e '.[dev]' or '.[openvino]')")
            continue
        for precision in DEMO_PRECISIONS:
            # bench then measures every artifact, and marks an INT8 one over the budget
            res = export_run(run, target, precision=precision, log=lambda m: None,
                             allow_failed_gate=True)
            p = res.manifest["parity"]
            verdict = (f"{'passed' if res.passed else 'FAILED'} ({agreement_line(p)}; artifact "
                       f"top-1 {p['artifact_top1']:.4f})" if p.get("status") == "checked"
                       else f"{p.get('status')} ({p.get('reason')})")
            console.print(f"exported {target} {precision}: parity {verdict} -> {res.folder}",
                          soft_wrap=True)
            exports.append(res)
    return exports


def demo(out: str | Path = "runs/demo", data: str | Path | None = None,
         **options) -> DemoResult:
    """Write the digits demo data (once), fine-tune EfficientNet-Lite0 with QAT on it, and
    export the ONNX Runtime and OpenVINO CPU artifacts (FP32 and INT8).

    Args:
        out: run folder; must not exist yet.
        data: where the demo images go; default: <out>/../demo-data/digits.
        **options: flat overrides of the demo config (epochs, img_size, device, ...).
    """
    out = Path(out)
    data = Path(data) if data else out.parent / "demo-data" / "digits"
    if not (data.is_dir() and any(data.iterdir())):
        write_demo_data(data)
        console.print(f"demo data (scikit-learn digits, 1,797 PNGs) written to {data}")
    result = tune(config_file=str(demo_config_path()), data=str(data), out=str(out), **options)
    exports = export_local_targets(result.run_dir)
    report, report_dir = bench_exports(exports)
    return DemoResult(result, exports, report, report_dir)


def bench_exports(exports: list) -> tuple[dict, Path]:
    """Bench the demo's artifacts on this machine and write the report into the run."""
    from ftedge.stages.bench.bench import BenchOptions, bench
    from ftedge.stages.bench.cli_support import default_report_dir, publish_report

    folders = [e.folder for e in exports]
    console.print(f"benching {len(folders)} artifacts on this machine")
    report = bench(folders, opts=BenchOptions(batches=(1, 8, 32), runs=100),
                   progress=lambda m: console.print(m, soft_wrap=True))
    out = default_report_dir(folders[0])
    publish_report(report, out)
    return report, out
