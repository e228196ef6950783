"""`python -m ftedge` is the command line."""

import runpy
import sys

import ftedge.__main__
from ftedge.cli import main


def test_python_dash_m_runs_the_cli(monkeypatch, capsys):
    assert ftedge.__main__.main is main  # importing it runs nothing
    monkeypatch.setattr(sys, "argv", ["ftedge", "--help"])
    runpy.run_module("ftedge.__main__", run_name="__main__")  # as `python -m ftedge` runs it
    out = capsys.readouterr().out
    assert out.startswith("Usage: ") and "\n  tune " in out and "\n  export " in out
