"""The plugin's data routes (heatmap, compare, histograms, kernel grids, runs,
thinned series) through a werkzeug client, over logs of real training, checked
against the events that training wrote."""

import gzip
import json

import numpy as np
import pytest

from support import plugin_logs
from support.events import read_events
from support.plugin_calls import plugin_get, plugin_ok
from tb_weightnorm import schema
from tb_weightnorm.plugin.weight_health_plugin import HEATMAP_COLUMNS, MAX_COLUMNS, MAX_HISTOGRAM_STEPS
from tb_weightnorm.read import charts, histogram_tables
from tb_weightnorm.wire import metadata

CNN, LOOP = plugin_logs.CNN_RUN, plugin_logs.LOOP_RUN


get = plugin_get
ok = plugin_ok


def written_tables(run_dir, prefix, parse):
    """(names, {step: array}) of the tables under tag `prefix` as written; the
    names from the first event (`parse` of its plugin data)."""
    names, tables = None, {}
    for step, _, tag, meta, array in read_events(run_dir):
        if tag.startswith(prefix):
            names = parse(meta.plugin_data.content) or names
            tables[step] = array
    return names, tables


def written_norms(run_dir):
    """(names, steps, values [steps, rows, stats]) of the norm tables as written."""
    names, tables = written_tables(run_dir, metadata.NORM_TABLE_TAG_PREFIX, metadata.norm_table_names)
    steps = sorted(tables)
    return names, steps, np.stack([tables[s] for s in steps]).astype(np.float64)


def written_histograms(run_dir):
    """(names, {step: [kinds, rows, bins + 5]}) of the histograms as written."""
    return written_tables(run_dir, metadata.HISTOGRAM_TAG_PREFIX, histogram_tables.histogram_names)


def written_kernel_grids(run_dir, variable):
    """{step: (width, height, png, info)} of a variable's kernel grids as written."""
    return {
        step: tuple(array.tolist())
        for step, _, tag, _, array in read_events(run_dir)
        if tag == metadata.kernel_grid_tag(variable)
    }


# -- runs ---------------------------------------------------------------------


def test_runs_say_what_each_run_holds(api_client):
    runs = {r["run"]: r for r in ok(api_client, "runs")["runs"]}
    assert list(runs) == sorted(
        [CNN, plugin_logs.CNN_HIGH_RUN, LOOP, plugin_logs.NAN_RUN, plugin_logs.HOSTILE_RUN]
    )
    cnn = runs[CNN]
    steps = plugin_logs.CNN_EPOCHS * plugin_logs.CNN_BATCHES
    assert cnn["last_step"] == steps
    assert cnn["variables"] == len(plugin_logs.CNN_VARIABLE_SIZES)
    assert cnn["global_row"] is True
    assert cnn["layers"] == ["rgb_conv", "deep_conv", "out"]
    assert cnn["stats"] == list(schema.all_stat_names())
    assert cnn["gradient_note"] == ""
    assert cnn["histograms"] == {
        "kinds": ["weight", "gradient"],
        "bins": [plugin_logs.CNN_BINS],
        "variables": len(plugin_logs.CNN_VARIABLE_SIZES),
        "last_step": steps - 1,  # logged at steps 1, 3, ..., 11
    }
    grids = {g["variable"]: g for g in cnn["kernel_grids"]}
    assert set(grids) == set(plugin_logs.CNN_CONVS)
    for variable, (layer, mode, filters) in plugin_logs.CNN_CONVS.items():
        assert grids[variable] == {
            "layer": layer, "variable": variable, "mode": mode, "filters_total": filters, "last_step": steps
        }
    loop = runs[LOOP]
    assert loop["last_step"] == plugin_logs.LOOP_STEPS - 1
    assert loop["layers"] == ["hidden", "head"]
    assert loop["histograms"]["bins"] == [16]
    assert loop["kernel_grids"] == []


# -- heatmap ------------------------------------------------------------------


@pytest.mark.parametrize("how", charts.REDUCES)
def test_heatmap_buckets_reduce_the_logged_values(api_client, api_logdir, how):
    names, steps, values = written_norms(api_logdir / LOOP)
    stat = "gradient/l2"
    body = ok(api_client, f"heatmap?run={LOOP}&stat={stat}&max_steps=7&reduce={how}")
    assert body["logged_steps"] == len(steps) == plugin_logs.LOOP_STEPS
    assert body["reduce"] == how and body["max_steps"] == 7
    assert len(body["steps"]) == len(body["first_steps"]) == 7
    # Buckets cover the logged steps in order, without gaps or overlaps.
    assert body["first_steps"][0] == steps[0] and body["steps"][-1] == steps[-1]
    for last, next_first in zip(body["steps"], body["first_steps"][1:]):
        assert steps.index(next_first) == steps.index(last) + 1
    assert [r["variable"] for r in body["rows"]] == list(names.variables)
    assert [r["global"] for r in body["rows"]] == [v == schema.GLOBAL_ROW for v in names.variables]
    column = values[:, :, names.stats.index(stat)]
    reduce = {"max": np.max, "min": np.min, "mean": np.mean, "last": lambda b, axis: b[-1]}[how]
    for j, (first, last) in enumerate(zip(body["first_steps"], body["steps"])):
        bucket = column[steps.index(first) : steps.index(last) + 1]
        expected = reduce(bucket, axis=0)
        got = [row["values"][j] for row in body["rows"]]
        np.testing.assert_allclose(got, expected, rtol=5e-4)  # 4 significant digits


def test_heatmap_without_thinning_has_one_column_per_step_and_values_are_rounded(api_client, api_logdir):
    names, steps, values = written_norms(api_logdir / LOOP)
    body = ok(api_client, f"heatmap?run={LOOP}&stat=weight/l2")
    assert body["max_steps"] == HEATMAP_COLUMNS
    assert body["steps"] == body["first_steps"] == steps
    first = body["rows"][0]["values"]
    assert all(v == float(f"{v:.4g}") for v in first)  # 4 significant digits
    np.testing.assert_allclose(first, values[:, 0, names.stats.index("weight/l2")], rtol=5e-4)
    assert ok(api_client, f"heatmap?run={LOOP}&stat=weight/l2&max_steps=999999")["max_steps"] == MAX_COLUMNS


def test_heatmap_of_a_stat_never_measured_for_a_row_is_null(api_client):
    body = ok(api_client, f"heatmap?run={LOOP}&stat=gradient/dead_fraction&max_steps=3")
    by_variable = {r["variable"]: r["values"] for r in body["rows"]}
    assert by_variable["loop_mlp/hidden/bias"] == [None] * 3  # a bias has no units
    assert by_variable[schema.GLOBAL_ROW] == [None] * 3
    assert all(isinstance(v, float) for v in by_variable["loop_mlp/hidden/kernel"])


# -- series -------------------------------------------------------------------


def test_series_thinned_on_request_shows_the_value_at_each_bucket_end(api_client, api_logdir):
    names, steps, values = written_norms(api_logdir / LOOP)
    variable = "loop_mlp/head/kernel"
    full = ok(api_client, f"series?run={LOOP}&stat=update/ratio&variable={variable}")
    assert full["steps"] == full["first_steps"] == steps and full["logged_steps"] == len(steps)
    thin = ok(api_client, f"series?run={LOOP}&stat=update/ratio&variable={variable}&max_steps=10")
    assert len(thin["steps"]) == 10 and thin["reduce"] == "last"
    column = values[:, names.variables.index(variable), names.stats.index("update/ratio")]
    for step, value in zip(thin["steps"], thin["series"][0]["values"]):
        assert value == np.float32(column[steps.index(step)])  # not rounded
    assert len(thin["wall_times"]) == 10
    peak = ok(api_client, f"series?run={LOOP}&stat=update/ratio&variable={variable}&max_steps=1&reduce=max")
    assert peak["series"][0]["values"] == [pytest.approx(np.nanmax(column), rel=1e-6)]


# -- compare ------------------------------------------------------------------


def test_compare_runs_with_variables_and_layers_listing_what_is_missing(api_client, api_logdir):
    body = ok(
        api_client,
        f"compare?run={LOOP}&run={CNN}&stat=weight/l2&variable=rgb_cnn/out/kernel&variable={schema.GLOBAL_ROW}"
        "&layer=hidden&layer=deep_conv&max_steps=4",
    )
    assert body["stat"] == "weight/l2" and body["max_steps"] == 4
    loop, cnn = body["runs"]
    assert (loop["run"], cnn["run"]) == (LOOP, CNN)
    assert loop["missing"] == ["rgb_cnn/out/kernel"] and loop["missing_layers"] == ["deep_conv"]
    assert [s["variable"] for s in loop["series"]] == [
        schema.GLOBAL_ROW, "loop_mlp/hidden/kernel", "loop_mlp/hidden/bias"
    ]
    assert cnn["missing"] == [] and cnn["missing_layers"] == ["hidden"]
    assert [s["variable"] for s in cnn["series"]] == [
        "rgb_cnn/out/kernel", schema.GLOBAL_ROW, "rgb_cnn/deep_conv/kernel", "rgb_cnn/deep_conv/bias"
    ]
    assert loop["logged_steps"] == plugin_logs.LOOP_STEPS and len(loop["steps"]) == 4
    assert cnn["steps"][-1] == plugin_logs.CNN_EPOCHS * plugin_logs.CNN_BATCHES
    names, steps, values = written_norms(api_logdir / CNN)
    last = values[-1, names.variables.index("rgb_cnn/out/kernel"), names.stats.index("weight/l2")]
    assert cnn["series"][0]["values"][-1] == pytest.approx(last, rel=5e-4)


# -- histograms ---------------------------------------------------------------


@pytest.mark.parametrize("kind", ["weight", "gradient"])
def test_histograms_are_the_written_ones_and_count_every_element(api_client, api_logdir, kind):
    names, written = written_histograms(api_logdir / CNN)
    expected_steps = list(range(1, plugin_logs.CNN_EPOCHS * plugin_logs.CNN_BATCHES, plugin_logs.CNN_HISTOGRAM_EVERY))
    assert sorted(written) == expected_steps
    for variable, size in plugin_logs.CNN_VARIABLE_SIZES.items():
        body = ok(api_client, f"histograms?run={CNN}&variable={variable}&kind={kind}")
        assert body["variable"] == variable and body["kind"] == kind
        (entry,) = body["runs"]
        assert entry["layer"] == names.layers[names.variables.index(variable)]
        assert entry["logged_steps"] == len(expected_steps)
        assert [h["step"] for h in entry["histograms"]] == expected_steps
        for h in entry["histograms"]:
            assert len(h["counts"]) == plugin_logs.CNN_BINS
            assert sum(h["counts"]) + h["nan_count"] + h["neg_inf_count"] + h["pos_inf_count"] == size
            row = written[h["step"]][names.kinds.index(kind), names.variables.index(variable)]
            assert h["counts"] == row[2:-3].astype(int).tolist()
            assert h["min"] == pytest.approx(row[0], rel=1e-6) and h["max"] == pytest.approx(row[1], rel=1e-6)
            assert h["min"] <= h["max"]


def test_histograms_thin_evenly_keep_the_last_and_list_runs_without(api_client):
    body = ok(api_client, f"histograms?run={LOOP}&run={CNN}&variable=loop_mlp/hidden/kernel&kind=weight&max_steps=3")
    loop, cnn = body["runs"]
    assert [h["step"] for h in loop["histograms"]] == [0, 60, 110]  # of 0, 10, ..., 110
    assert loop["logged_steps"] == 12
    assert cnn == {"run": CNN, "missing": "no weight histogram of 'loop_mlp/hidden/kernel'"}
    nan_run = ok(api_client, f"histograms?run={plugin_logs.NAN_RUN}&run={LOOP}&variable=loop_mlp/head/bias&kind=gradient")
    assert nan_run["runs"][0] == {"run": plugin_logs.NAN_RUN, "missing": "no histograms"}
    capped = ok(api_client, f"histograms?run={LOOP}&variable=loop_mlp/head/bias&kind=weight&max_steps=1000000000")
    assert capped["max_steps"] == MAX_HISTOGRAM_STEPS


# -- kernel grids -------------------------------------------------------------


@pytest.mark.parametrize("variable", sorted(plugin_logs.CNN_CONVS))
def test_kernel_grids_list_every_logged_image_and_serve_its_png(api_client, api_logdir, variable):
    import tensorflow as tf

    layer, mode, filters = plugin_logs.CNN_CONVS[variable]
    written = written_kernel_grids(api_logdir / CNN, variable)
    body = ok(api_client, f"kernel_grids?run={CNN}&variable={variable}")
    assert (body["layer"], body["mode"], body["filters_total"]) == (layer, mode, filters)
    steps = [0] + [plugin_logs.CNN_BATCHES * (e + 1) for e in range(plugin_logs.CNN_EPOCHS)]
    assert [image["step"] for image in body["images"]] == steps == sorted(written)
    for image in body["images"]:
        width, height, png, info = written[image["step"]]
        assert (image["width"], image["height"]) == (int(width), int(height))
        info = json.loads(info)
        assert image["scale"] == pytest.approx(info["scale"], rel=5e-4) and image["scale"] > 0
        assert image["filters_shown"] == info["filters_shown"] == filters
        response, served = get(api_client, image["url"])
        assert response.status_code == 200 and response.mimetype == "image/png"
        assert response.headers["X-Content-Type-Options"] == "nosniff"
        assert served == png
        assert tf.io.decode_png(served).shape == (image["height"], image["width"], 3)


# -- errors -------------------------------------------------------------------

V = "rgb_cnn/out/kernel"
K = "rgb_cnn/rgb_conv/kernel"


@pytest.mark.parametrize(
    "route, status, mentions",
    [
        ("table", 400, "'run'"),
        ("table?run=", 400, "'run'"),
        (f"table?run={LOOP}&step=x", 400, "'step'"),
        (f"table?run={LOOP}&step=5000", 404, "step 5000"),
        ("table?run=nope", 404, "'nope'"),
        (f"series?run={LOOP}", 400, "'stat'"),
        (f"series?run={LOOP}&stat=weight/l7", 404, "weight/l7"),
        (f"series?run={LOOP}&stat=weight/l2&variable=nope", 404, "'nope'"),
        ("heatmap", 400, "'run'"),
        (f"heatmap?run={LOOP}", 400, "'stat'"),
        (f"heatmap?run={LOOP}&stat=weight/l2&max_steps=x", 400, "'max_steps'"),
        (f"heatmap?run={LOOP}&stat=weight/l2&max_steps=0", 400, "'max_steps'"),
        (f"heatmap?run={LOOP}&stat=weight/l2&reduce=median", 400, "'reduce'"),
        (f"heatmap?run={LOOP}&stat=weight/l2&by=gate", 400, "'by'"),
        ("heatmap?run=nope&stat=weight/l2", 404, "'nope'"),
        (f"heatmap?run={LOOP}&stat=weight/l9", 404, "'weight/l9'"),
        (f"series?run={LOOP}&stat=weight/l2&max_steps=-1", 400, "'max_steps'"),
        (f"series?run={LOOP}&stat=weight/l2&reduce=sum", 400, "'reduce'"),
        ("compare?stat=weight/l2&variable=v", 400, "'run'"),
        (f"compare?run={LOOP}&variable=v", 400, "'stat'"),
        (f"compare?run={LOOP}&stat=weight/l2", 400, "'variable' or 'layer'"),
        (f"compare?run={LOOP}&run=&stat=weight/l2&variable=v", 400, "'run'"),
        (f"compare?run={LOOP}&stat=weight/l2&variable=v&max_steps=1.5", 400, "'max_steps'"),
        (f"compare?run={LOOP}&run=nope&stat=weight/l2&variable=v", 404, "'nope'"),
        (f"compare?run={LOOP}&stat=weight/l9&variable=v", 404, "'weight/l9'"),
        (f"histograms?variable={V}&kind=weight", 400, "'run'"),
        (f"histograms?run={CNN}&kind=weight", 400, "'variable'"),
        (f"histograms?run={CNN}&variable={V}", 400, "'kind'"),
        (f"histograms?run={CNN}&variable={V}&kind=update", 400, "'kind'"),
        (f"histograms?run={CNN}&variable={V}&kind=weight&max_steps=z", 400, "'max_steps'"),
        (f"histograms?run=nope&variable={V}&kind=weight", 404, "'nope'"),
        (f"histograms?run={CNN}&variable=nope&kind=weight", 404, "'nope'"),
        (f"kernel_grids?variable={K}", 400, "'run'"),
        (f"kernel_grids?run={CNN}", 400, "'variable'"),
        (f"kernel_grids?run=nope&variable={K}", 404, "'nope'"),
        (f"kernel_grids?run={CNN}&variable={V}", 404, repr(V)),
        (f"kernel_grids?run={LOOP}&variable={K}", 404, "no kernel grids"),
        (f"kernel_image?run={CNN}&variable={K}", 400, "'step'"),
        (f"kernel_image?run={CNN}&variable={K}&step=one", 400, "'step'"),
        (f"kernel_image?variable={K}&step=0", 400, "'run'"),
        (f"kernel_image?run={CNN}&step=0", 400, "'variable'"),
        (f"kernel_image?run={CNN}&variable={K}&step=3", 404, "step 3"),
        (f"kernel_image?run=nope&variable={K}&step=0", 404, "'nope'"),
        (f"kernel_image?run={CNN}&variable=nope&step=0", 404, "'nope'"),
        ("findings?run=nope", 404, "'nope'"),
        ("findings?run=", 400, "'run'"),
        ("runs?run=whatever", 200, None),
    ],
)
def test_bad_parameters_name_what_is_wrong(api_client, route, status, mentions):
    response, body = get(api_client, route)
    assert response.status_code == status, body
    assert response.mimetype == "application/json"
    if mentions is not None:
        assert mentions in body["error"]
        assert "Traceback" not in body["error"]


def test_responses_go_through_tensorboards_helper(api_client):
    response = api_client.get(
        f"/data/plugin/weight_health/heatmap?run={LOOP}&stat=weight/l2", headers={"Accept-Encoding": "gzip"}
    )
    assert response.status_code == 200
    assert response.headers["X-Content-Type-Options"] == "nosniff"
    assert response.headers["Content-Encoding"] == "gzip"
    body = json.loads(gzip.decompress(response.get_data()))
    assert body["run"] == LOOP
