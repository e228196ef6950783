"""`ftedge demo`: the whole pipeline on built-in data, as far as it is built."""

from __future__ import annotations

from importlib import resources
from pathlib import Path

from ftedge.console import console
from ftedge.data.demo import write_demo_data
from ftedge.training import TuneResult, tune


def demo_config_path() -> Path:
    return Path(str(resources.files("ftedge") / "configs" / "demo.yaml"))


def demo(out: str | Path = "runs/demo", data: str | Path | None = None,
         **options) -> TuneResult:
    """Write the digits demo data (once) and fine-tune EfficientNet-Lite0 on it.

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
    return tune(config_file=str(demo_config_path()), data=str(data), out=str(out), **options)
