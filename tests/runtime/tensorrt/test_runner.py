"""runtime/tensorrt/runner.py without a GPU: the import error and the one logger per process.
Running an engine is tests/runtime/tensorrt/test_tensorrt_gpu.py's (marked tensorrt)."""

import sys
import types

import pytest

from ftedge.errors import ExportError
from ftedge.runtime.tensorrt import runner as trt_runner


def test_a_missing_tensorrt_says_where_it_comes_from(monkeypatch):
    monkeypatch.setitem(sys.modules, "tensorrt", None)  # import tensorrt raises ImportError
    with pytest.raises(ExportError, match="TensorRT is not installed here") as e:
        trt_runner.tensorrt_module()
    assert "JetPack" in e.value.hint and "ftedge[tensorrt]" in e.value.hint


def test_one_logger_per_process_at_warning_level(monkeypatch):
    made = []

    class Logger:
        WARNING = "warning-level"

        def __init__(self, level):
            made.append(level)

    monkeypatch.setitem(sys.modules, "tensorrt", types.SimpleNamespace(Logger=Logger))
    monkeypatch.setattr(trt_runner, "_LOGGER", None)
    first = trt_runner.trt_logger()
    assert trt_runner.trt_logger() is first and made == ["warning-level"]
