"""The VNNI check ftedge uses (runtime/onnxruntime/runner.py) and the standalone deploy/infer.py's copy
(deploy/templates/artifact.py, which cannot import ftedge) decide alike."""

import platform
from pathlib import Path

import pytest

import ftedge.deploy.templates.artifact as template
import ftedge.runtime.onnxruntime.runner as runtime_ort

CASES = [("x86_64", "fpu sse2 avx2 avx512_vnni", "vnni"), ("AMD64", "avx2 avx_vnni", "vnni"),
         ("x86_64", "avx2 amx_int8", "vnni"), ("x86_64", "fpu sse2 avx2 fma", "no-vnni"),
         ("x86_64", OSError, "unknown"), ("aarch64", "asimd asimddp", "not-x86")]


@pytest.mark.parametrize("machine,cpuinfo,expected", CASES)
def test_both_copies_read_the_cpu_alike(monkeypatch, machine, cpuinfo, expected):
    def read_text(self, *args, **kwargs):
        assert str(self) == "/proc/cpuinfo"
        if cpuinfo is OSError:
            raise OSError("not readable")
        return f"processor : 0\nflags : {cpuinfo}\n"

    monkeypatch.setattr(platform, "machine", lambda: machine)
    monkeypatch.setattr(Path, "read_text", read_text)
    assert runtime_ort.vnni_state.__wrapped__() == expected  # past its cache
    assert template.vnni_state() == expected
