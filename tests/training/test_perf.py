"""training/perf.py: malloc tuning applies on glibc and is skipped when turned off."""

import sys

import pytest

from ftedge.training import perf


def test_turned_off_by_the_environment(monkeypatch):
    monkeypatch.setenv("FTEDGE_MALLOC_TUNING", "0")
    assert perf.keep_freed_memory() is False


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="mallopt is glibc's (Linux)")
def test_applied_on_glibc(monkeypatch):
    import platform

    monkeypatch.delenv("FTEDGE_MALLOC_TUNING", raising=False)
    if platform.libc_ver()[0] != "glibc":
        pytest.skip("not glibc: nothing to tune")
    assert perf.keep_freed_memory() is True


def test_a_libc_without_mallopt_is_left_alone(monkeypatch):
    monkeypatch.delenv("FTEDGE_MALLOC_TUNING", raising=False)
    monkeypatch.setattr(sys, "platform", "linux")
    monkeypatch.setattr(perf.ctypes, "CDLL", lambda name: object())  # no mallopt attribute
    assert perf.keep_freed_memory() is False
