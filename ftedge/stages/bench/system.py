"""What the machine is and what it spends: CPU, memory, Jetson power modes, tegrastats, RAPL.

Every reader returns None (and the report says "not available here") when its source cannot
be read; no number is ever made up.
"""

from __future__ import annotations

import os
import platform
import re
import shutil
import subprocess
import threading
import time
from pathlib import Path

RAPL = Path("/sys/class/powercap/intel-rapl:0")
NVPMODEL_STATUS = Path("/var/lib/nvpmodel/status")


def cpu_model(cpuinfo: Path = Path("/proc/cpuinfo")) -> str:
    try:
        for line in cpuinfo.read_text().splitlines():
            if line.lower().startswith(("model name", "hardware", "cpu model")):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def environment(threads: int | None) -> dict:
    """The facts a reader needs to compare two bench reports."""
    return {"hostname": platform.node(), "platform": platform.platform(),
            "machine": platform.machine(), "cpu": cpu_model(), "cpu_count": os.cpu_count(),
            "threads": threads, "python": platform.python_version(),
            "jetson": jetson_state(), "rapl": rapl_available()}


# --- memory -------------------------------------------------------------------------------

def _status_kb(field: str) -> int | None:
    try:
        m = re.search(rf"^{field}:\s+(\d+) kB", Path("/proc/self/status").read_text(), re.M)
        return int(m.group(1)) if m else None
    except OSError:
        return None


def reset_peak_rss() -> bool:
    """Reset the kernel's peak-RSS mark (VmHWM) of this process; False where not allowed."""
    try:
        Path("/proc/self/clear_refs").write_text("5")
        return True
    except OSError:
        return False


def rss_mb() -> float | None:
    kb = _status_kb("VmRSS")
    return None if kb is None else kb / 1024


def peak_rss_mb() -> float | None:
    kb = _status_kb("VmHWM")
    if kb is None:
        import resource

        kb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return kb / 1024


# --- Jetson -------------------------------------------------------------------------------

def parse_nvpmodel(text: str) -> dict:
    """`nvpmodel -q` output -> {"mode_name": "15W", "mode_id": 0}."""
    name = re.search(r"NV Power Mode:\s*(\S+)", text)
    ident = re.search(r"^\s*(\d+)\s*$", text, re.M)
    return {"mode_name": name.group(1) if name else None,
            "mode_id": int(ident.group(1)) if ident else None}


def jetson_clocks_on(show_text: str) -> bool | None:
    """`jetson_clocks --show`: clocks are pinned when every CPU's MinFreq equals its MaxFreq."""
    cpus = re.findall(r"cpu\d+:.*?MinFreq=(\d+).*?MaxFreq=(\d+)", show_text)
    if not cpus:
        return None
    return all(lo == hi for lo, hi in cpus)


def _run(cmd: list[str]) -> str | None:
    if shutil.which(cmd[0]) is None:
        return None
    try:
        return subprocess.run(cmd, capture_output=True, text=True, timeout=10).stdout
    except (OSError, subprocess.SubprocessError):
        return None


def jetson_state() -> dict | None:
    """nvpmodel mode and jetson_clocks state on a Jetson; None elsewhere."""
    if not Path("/etc/nv_tegra_release").is_file():
        return None
    q = _run(["nvpmodel", "-q"])
    show = _run(["jetson_clocks", "--show"])
    return {"nvpmodel": parse_nvpmodel(q) if q else "not readable (nvpmodel not in the container)",
            "jetson_clocks": jetson_clocks_on(show) if show else "not readable (needs root)"}


RAIL = re.compile(r"\b([A-Z][A-Z0-9_]*)\s+(\d+)mW/(\d+)mW")


def parse_tegrastats(line: str) -> dict[str, int]:
    """One tegrastats line -> instantaneous power per rail in mW (VDD_IN, VDD_CPU_GPU_CV, ...).

    JetPack 5/6 print "VDD_IN 5022mW/5022mW" (now/average); older releases "POM_5V_IN 3285/3285".
    """
    rails = {name: int(now) for name, now, _ in RAIL.findall(line)}
    if not rails:
        rails = {n: int(v) for n, v, _ in re.findall(r"\b(POM_[A-Z0-9_]+)\s+(\d+)/(\d+)", line)}
    return rails


class TegrastatsSampler:
    """Runs `tegrastats --interval MS` while a measurement runs; mean power per rail."""

    def __init__(self, interval_ms: int = 100):
        self.interval_ms = interval_ms
        self.samples: list[dict[str, int]] = []
        self.proc = None

    @staticmethod
    def available() -> bool:
        return shutil.which("tegrastats") is not None

    def __enter__(self):
        self.proc = subprocess.Popen(["tegrastats", "--interval", str(self.interval_ms)],
                                     stdout=subprocess.PIPE, text=True)
        self.thread = threading.Thread(target=self._read, daemon=True)
        self.thread.start()
        return self

    def _read(self):
        for line in self.proc.stdout:
            rails = parse_tegrastats(line)
            if rails:
                self.samples.append(rails)

    def __exit__(self, *exc):
        self.proc.terminate()
        self.proc.wait(timeout=5)
        self.thread.join(timeout=2)

    def mean_mw(self) -> dict[str, float]:
        keys = {k for s in self.samples for k in s}
        return {k: sum(s.get(k, 0) for s in self.samples) / len(self.samples) for k in keys} \
            if self.samples else {}


def rapl_available(root: Path = RAPL) -> bool:
    try:
        int((root / "energy_uj").read_text())
        return True
    except (OSError, ValueError):
        return False


class RaplMeter:
    """Package energy from Intel/AMD RAPL sysfs counters (wrap-around handled)."""

    def __init__(self, root: Path = RAPL):
        self.root = root
        self.max_uj = int((root / "max_energy_range_uj").read_text())

    def read_uj(self) -> int:
        return int((self.root / "energy_uj").read_text())

    def delta_j(self, start_uj: int, end_uj: int) -> float:
        d = end_uj - start_uj
        if d < 0:
            d += self.max_uj
        return d / 1e6


class EnergyProbe:
    """Energy over a timed block: tegrastats on a Jetson, RAPL on x86, else 'not available'."""

    def __init__(self):
        self.source = "tegrastats" if TegrastatsSampler.available() else (
            "rapl" if rapl_available() else None)

    def __enter__(self):
        self.t0 = time.perf_counter()
        if self.source == "tegrastats":
            self.sampler = TegrastatsSampler().__enter__()
        elif self.source == "rapl":
            self.meter = RaplMeter()
            self.start = self.meter.read_uj()
        return self

    def __exit__(self, *exc):
        self.seconds = time.perf_counter() - self.t0
        if self.source == "tegrastats":
            self.sampler.__exit__(*exc)
        elif self.source == "rapl":
            self.joules = self.meter.delta_j(self.start, self.meter.read_uj())

    def result(self, images: int) -> dict:
        """mJ per image over the block (whole-board input power on a Jetson, package on x86)."""
        if self.source is None:
            return {"source": None, "mj_per_image": None,
                    "note": "no power reader here (tegrastats or readable RAPL counters)"}
        if self.source == "tegrastats":
            if len(self.sampler.samples) < 2:
                return {"source": "tegrastats", "mj_per_image": None,
                        "note": "the timed block was shorter than two tegrastats samples; "
                                "use --time S or more --runs"}
            power = self.sampler.mean_mw()
            total = power.get("VDD_IN") or power.get("POM_5V_IN")
            if total is None:
                return {"source": "tegrastats", "mj_per_image": None, "rails_mw": power,
                        "note": "no VDD_IN rail in tegrastats output"}
            return {"source": "tegrastats", "rails_mw": power,
                    "mj_per_image": total * self.seconds / images}
        return {"source": "rapl", "joules": self.joules,
                "mj_per_image": 1000 * self.joules / images}
