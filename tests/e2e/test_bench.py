"""The training benchmarks still run (at tiny sizes; no timing is judged)."""

import json

import pytest

from bench import common, memory, overhead, size, user_fits
from tb_weightnorm.writer.optimizer_hook import BEFORE_UPDATE


def test_overhead_measures_every_variant_in_pairs(tmp_path):
    result = overhead.run(quick=True, workdir=str(tmp_path))
    model = result["models"]["small_cnn"]
    assert set(model["variants"]) == set(overhead.VARIANTS)
    for ratios in model["variants"].values():
        assert ratios["pairs"] == 1 and ratios["median"] > 0
    assert model["baseline_ms_per_step"] > 0
    assert "WeightHealthCallback, defaults" in overhead.markdown(result)
    json.dumps(result)


def test_user_fits_times_whole_fits_of_fresh_models(tmp_path):
    result = user_fits.run(quick=True, workdir=str(tmp_path))
    model = result["models"]["small_cnn"]
    assert set(model["variants"]) == set(overhead.VARIANTS)
    assert len(model["seconds"]["plain"]["fit"]) == 1 and model["plain_ms_per_step"] > 0
    assert model["parameters"] > 0 and result["bandwidth_bytes_per_s"] > 0
    text = user_fits.markdown(result)
    assert "of Keras' trace" in text and "bandwidth limit" in text
    json.dumps(result)


def test_size_takes_the_event_files_apart(tmp_path):
    result = size.run(quick=True, workdir=str(tmp_path))
    settings = result["models"]["small_cnn"]["settings"]
    per = settings["every step"]["bytes_per_variable_step"]
    assert per["norm table"] > 0 and per["histograms"] > 0 and per["kernel grids"] > 1000
    # The names come once, in the first record, and cost more than a step.
    raw = settings["every step"]["raw"]["norm table"]
    assert raw["series"] == 1 and raw["first"] > raw["bytes"] / raw["events"]
    assert "| small CNN |" in size.markdown(result)


def test_memory_counts_the_copies_each_setting_keeps(tmp_path):
    result = memory.run(quick=True, workdir=str(tmp_path))
    settings = result["models"]["small_cnn"]["settings"]
    weights = settings["defaults"]["model_weight_bytes"]
    # Defaults hold W before the update (during a logged step) and W_0;
    # without dist_init one copy; with no update or dist_init column stored, none.
    copies = {name: m["held"][BEFORE_UPDATE] + m["held"]["initial weights"] for name, m in settings.items()}
    assert copies["defaults"] == 2 * weights
    assert copies["no dist_init (keep_initial_weights=False)"] == weights
    assert copies["gradients only (stats=['gradient/*'])"] == 0
    assert all(m["held"]["tables kept for the diagnosis (host)"] > 0 for m in settings.values())
    assert "held on the model's device" in memory.markdown(result)


def test_results_go_between_their_markers_and_the_prose_stays(tmp_path):
    page = tmp_path / "BENCHMARKS.md"
    page.write_text("# Benchmarks\n\nProse.\n\n<!-- results:size -->\nold\n<!-- /results:size -->\n\nMore prose.\n")
    common.update_section(str(page), "size", "| new |")
    common.update_section(str(page), "memory", "| memory |")
    text = page.read_text()
    assert "old" not in text and "| new |" in text and "Prose." in text and "More prose." in text
    assert text.index("| new |") < text.index("More prose.") < text.index("| memory |")
