"""The VNNI check of the standalone deploy/infer.py (deploy/templates/artifact.py, which
cannot import ftedge) reads the CPU right; ftedge runs that same function, not a copy."""

import platform
from pathlib import Path

import pytest

import ftedge.deploy.templates.artifact as template
import ftedge.runtime.onnxruntime.runner as runtime_ort

CASES = [("x86_64", "fpu sse2 avx2 avx512_vnni", "vnni"), ("AMD64", "avx2 avx_vnni", "vnni"),
         ("x86_64", "avx2 amx_int8", "vnni"), ("x86_64", "fpu sse2 avx2 fma", "no-vnni"),
         ("x86_64", OSError, "unknown"), ("aarch64", "asimd asimddp", "not-x86")]


@pytest.mark.parametrize("machine,cpuinfo,expected", CASES)
def test_vnni_state_reads_the_cpu(monkeypatch, machine, cpuinfo, expected):
    def read_text(self, *args, **kwargs):
        assert str(self) == "/proc/cpuinfo"
        if cpuinfo is OSError:
            raise OSError("not readable")
        return f"processor : 0\nflags : {cpuinfo}\n"

    monkeypatch.setattr(platform, "machine", lambda: machine)
    monkeypatch.setattr(Path, "read_text", read_text)
    assert template.vnni_state() == expected


def test_ftedge_runs_the_templates_checks_not_copies():
    import ftedge.deploy.templates.runner_openvino as template_ov
    import ftedge.runtime.openvino.runner as runtime_ov

    assert runtime_ort.vnni_state.__wrapped__ is template.vnni_state  # cached: cpuinfo is fixed
    assert runtime_ov.cpu_int8_without_vnni is template_ov.cpu_int8_without_vnni
