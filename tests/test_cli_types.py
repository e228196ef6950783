"""Every number a flag takes is bounded and finite: the whole click command tree is walked."""

from __future__ import annotations

import click
import pytest

from ftedge.cli import cli
from tests.test_cli import run_cli


def _options(group: click.Group, path=()):
    for name, cmd in group.commands.items():
        if isinstance(cmd, click.Group):
            yield from _options(cmd, (*path, name))
        for p in cmd.params:
            yield (*path, name), p


NUMERIC = [(cmd, p) for cmd, p in _options(cli)
           if isinstance(p.type, (click.types.IntParamType, click.types.FloatParamType))]


def test_the_walk_finds_the_numeric_flags():
    names = {(" ".join(c), p.name) for c, p in NUMERIC}
    assert {("tune", "seed"), ("bench", "threads"), ("quantize", "percentile"),
            ("demo-data", "seed"), ("predict", "topk")} <= names
    assert len(NUMERIC) >= 20


@pytest.mark.parametrize("cmd,param", NUMERIC,
                         ids=[f"{' '.join(c)}-{p.name}" for c, p in NUMERIC])
def test_every_number_has_bounds(cmd, param):
    t = param.type
    assert isinstance(t, (click.IntRange, click.FloatRange)), f"{cmd} --{param.name}: unbounded"
    assert t.min is not None, f"{cmd} --{param.name}: no lower bound"
    for bad in ("99999999999999999999", "-99999999999999999999", "nan", "inf", "-inf", "1e400"):
        with pytest.raises(click.BadParameter):
            t.convert(bad, param, None)
    assert t.max is not None, f"{cmd} --{param.name}: no upper bound"


@pytest.mark.parametrize("args,want", [
    (["tune", "--data", ".", "--seed", "99999999999999999999"], "--seed"),
    (["tune", "--data", ".", "--img-size", "-5"], "--img-size"),
    (["export", ".", "--target", "onnxruntime-cpu", "--max-drop", "nan"], "--max-drop"),
    (["bench", ".", "--threads", "-1"], "--threads"),
    (["bench", ".", "--batch", "1,99999999999999999999"], "--batch"),
    (["quantize", ".", "--percentile", "inf"], "--percentile"),
])
def test_out_of_range_numbers_are_usage_errors(monkeypatch, capsys, args, want):
    code, out, err = run_cli(monkeypatch, capsys, *args)
    assert code == 2 and want in err and "Traceback" not in err + out


def test_export_batch_beyond_any_int():
    from ftedge.errors import ConfigError
    from ftedge.runtime.profiles import load_profile, parse_batch

    profile = load_profile("onnxruntime-cpu")
    for bad in ("99999999999999999999", 10**20, "-1", "0", 1.5, "x"):
        with pytest.raises(ConfigError, match="batch must be"):
            parse_batch(bad, profile)
    assert parse_batch("8", profile) == 8 and parse_batch("dynamic", profile) is None
