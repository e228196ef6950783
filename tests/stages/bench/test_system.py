"""System readers against recorded tegrastats / nvpmodel / jetson_clocks / RAPL samples."""

from pathlib import Path

import pytest

from ftedge.stages.bench import system

REC = Path(__file__).parent / "recorded"


def test_tegrastats_jetpack6_rails():
    lines = (REC / "tegrastats_orin_nano.txt").read_text().splitlines()
    rails = system.parse_tegrastats(lines[0])
    assert rails == {"VDD_IN": 7421, "VDD_CPU_GPU_CV": 2463, "VDD_SOC": 1802}


def test_tegrastats_older_pom_rails():
    rails = system.parse_tegrastats((REC / "tegrastats_xavier_nx_jp4.txt").read_text())
    assert rails["POM_5V_IN"] == 3285 and rails["POM_5V_CPU"] == 413


def test_tegrastats_mean_power_becomes_energy_per_image():
    probe = system.EnergyProbe()
    probe.source, probe.seconds = "tegrastats", 2.0
    probe.sampler = system.TegrastatsSampler()
    probe.sampler.samples = [system.parse_tegrastats(l) for l in
                             (REC / "tegrastats_orin_nano.txt").read_text().splitlines()]
    res = probe.result(images=100)
    assert res["rails_mw"]["VDD_IN"] == pytest.approx(7501)
    assert res["mj_per_image"] == pytest.approx(7501 * 2.0 / 100)  # mW x s = mJ


def test_nvpmodel_and_jetson_clocks():
    assert system.parse_nvpmodel((REC / "nvpmodel_q.txt").read_text()) == {
        "mode_name": "15W", "mode_id": 0}
    assert system.jetson_clocks_on((REC / "jetson_clocks_show_on.txt").read_text()) is True
    assert system.jetson_clocks_on((REC / "jetson_clocks_show_off.txt").read_text()) is False
    assert system.jetson_clocks_on("nothing useful") is None


def test_rapl_counter_wraps(tmp_path):
    (tmp_path / "energy_uj").write_text("999000000\n")
    (tmp_path / "max_energy_range_uj").write_text("1000000000\n")
    meter = system.RaplMeter(tmp_path)
    assert system.rapl_available(tmp_path)
    assert meter.delta_j(999_000_000, 1_000_000) == pytest.approx(2.0)
    assert not system.rapl_available(tmp_path / "missing")


def test_no_power_reader_says_so_instead_of_a_number(monkeypatch):
    monkeypatch.setattr(system.TegrastatsSampler, "available", staticmethod(lambda: False))
    monkeypatch.setattr(system, "rapl_available", lambda root=None: False)
    with system.EnergyProbe() as probe:
        pass
    res = probe.result(10)
    assert res["mj_per_image"] is None and "no power reader" in res["note"]


def test_peak_rss_is_readable():
    system.reset_peak_rss()
    assert system.peak_rss_mb() > 0 and system.rss_mb() > 0
