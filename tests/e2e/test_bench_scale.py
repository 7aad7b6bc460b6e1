"""Smoke test of the scale benchmarks (bench/plugin_scale.py, bench/tab_scale.py)
at tiny sizes: a real tensorboard and a real Chromium, figures present and
positive. Times are not judged here."""

import os
import pathlib
import sys

import pytest

sys.path.insert(0, str(pathlib.Path(__file__).resolve().parents[2]))

from bench import _scale_common, plugin_scale, tab_scale  # noqa: E402


@pytest.fixture(scope="module")
def workdir(tmp_path_factory):
    """One cached tiny logdir for both benchmarks."""
    return str(tmp_path_factory.mktemp("bench_scale"))


def test_plugin_scale_reports_load_memory_and_every_route(workdir):
    result = plugin_scale.run(quick=True, workdir=workdir)
    assert (result["variables"], result["steps"]) == (_scale_common.QUICK["variables"], _scale_common.QUICK["steps"])
    assert result["load_s"] > 0 and result["server_up_s"] > 0
    for rss in (result["rss_mb_after_load"], result["rss_mb_after_routes"]):
        assert rss["python"] > 0 and rss["data_server"] > 0 and rss["total"] > 0
    routes = result["routes"]
    expected = {"runs", "table (latest)", "table (at a step)", "findings", "histograms", "kernel_grids", "kernel_image"}
    assert expected <= set(routes)
    assert any(name.startswith("heatmap ") for name in routes) and any(name.startswith("compare ") for name in routes)
    for name, route in routes.items():
        assert route["cold_ms"] > 0 and route["warm_ms"] > 0 and route["bytes"] > 0, name
    text = plugin_scale.markdown(result)
    assert "| runs |" in text and " ms |" in text


def test_tab_scale_reports_the_time_to_the_heatmap(workdir):
    if not os.path.exists(_scale_common.CHROMIUM):
        pytest.fail(f"{_scale_common.CHROMIUM} is missing: install Debian's chromium package (./run-tests.sh does)")
    result = tab_scale.run(quick=True, workdir=workdir)
    assert result["loads"] and result["server_loaded_s"] > 0
    for load in [result["cold"], *result["loads"]]:
        assert load["drawn_ms"] > load["frame_start_ms"] > 0
        assert load["heatmap_rows"] > 0 and load["heatmap_columns"] > 0
        assert load["heatmap_logged_steps"] == _scale_common.QUICK["steps"]
        assert load["runs"] is not None and load["heatmap"] is not None
    assert result["median"]["drawn"] > 0 and result["median"]["tab"] > 0
    assert "heatmap drawn" in tab_scale.markdown(result).lower()
