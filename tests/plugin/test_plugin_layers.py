"""The heatmap by layer (`heatmap?by=layer`) over real training, checked
against a numpy recomputation from the full-precision values the `table`
route gives at each logged step; and names that are HTML, served verbatim."""

import functools
import json
import urllib.parse

import numpy as np
import pytest

from support import plugin_logs
from support.plugin_calls import plugin_get, plugin_ok
from tb_weightnorm import schema
from tb_weightnorm.plugin import bodies
from tb_weightnorm.plugin.weight_health_plugin import DIGITS
from tb_weightnorm.read import charts

CNN, CNN_HIGH, HOSTILE, NAN_RUN = (
    plugin_logs.CNN_RUN,
    plugin_logs.CNN_HIGH_RUN,
    plugin_logs.HOSTILE_RUN,
    plugin_logs.NAN_RUN,
)

STATS = [
    "weight/l1",
    "weight/l2",
    "weight/linf",
    "weight/mean",
    "weight/std",
    "weight/min",
    "weight/max",
    "weight/nan_count",
    "weight/dist_init",
    "gradient/l2",
    "gradient/mean",
    "gradient/dead_fraction",
    "update/l2",
    "update/ratio",
]


def route(name, **params):
    return name + "?" + urllib.parse.urlencode(params)


def number(value):
    """A JSON value of the API as a float: null is NaN (not measured)."""
    if value is None:
        return np.nan
    return {"Infinity": np.inf, "-Infinity": -np.inf}.get(value, value)


@pytest.fixture(scope="module")
def logged(api_client):
    """run -> (table route at the last step, values [steps, rows, stats] of
    every logged step from the table route: full precision)."""

    @functools.lru_cache(maxsize=None)
    def read(run):
        latest = plugin_ok(api_client, route("table", run=run))
        tables = [plugin_ok(api_client, route("table", run=run, step=s)) for s in latest["steps"]]
        values = np.array([[[number(v) for v in row["values"]] for row in t["rows"]] for t in tables], np.float64)
        return latest, values

    return read


def expected_layers(latest, values, stat):
    """{layer: [steps]} recomputed in numpy from the rows of each layer (the
    `(global)` row is no layer)."""
    stats = latest["stats"]
    rows_of = {}
    for i, row in enumerate(latest["rows"]):
        if row["variable"] != schema.GLOBAL_ROW:
            rows_of.setdefault(row["layer"], []).append(i)

    def col(name, rows):
        return values[:, rows, stats.index(name)]

    def norm(x):
        return np.sqrt(np.nansum(x**2, axis=1))

    out = {}
    name = stat.split("/")[1]
    for layer, rows in rows_of.items():
        x = col(stat, rows)
        if name == "l2" or stat == "weight/dist_init":
            out[layer] = norm(x)
        elif name in ("l1", "nan_count", "inf_count"):
            out[layer] = np.nansum(x, axis=1)
        elif name in ("linf", "max", "dead_fraction"):
            out[layer] = np.nanmax(x, axis=1)
        elif name == "min":
            out[layer] = np.nanmin(x, axis=1)
        elif stat == "update/ratio":
            update, weight = norm(col("update/l2", rows)), norm(col("weight/l2", rows))
            out[layer] = np.where(weight > 0, update / np.where(weight > 0, weight, 1), 0.0)
        else:  # the value of the row with the largest weight l2
            main = np.argmax(col("weight/l2", rows), axis=1)
            out[layer] = x[np.arange(len(x)), main]
    return out


def layer_heatmap(client, run, stat, **params):
    return plugin_ok(client, route("heatmap", run=run, stat=stat, by="layer", **params))


def values_of(row):
    return np.array([number(v) for v in row["values"]], np.float64)


# -- values -------------------------------------------------------------------


# A layer gone all NaN has no finite min or max: numpy warns, the value is NaN.
@pytest.mark.filterwarnings("ignore:All-NaN slice:RuntimeWarning")
@pytest.mark.parametrize("run", [CNN, CNN_HIGH, HOSTILE, NAN_RUN])
@pytest.mark.parametrize("stat", STATS)
def test_each_layer_value_combines_its_variables_at_each_step(api_client, logged, run, stat):
    latest, values = logged(run)
    body = layer_heatmap(api_client, run, stat)
    assert body["by"] == "layer" and body["steps"] == body["first_steps"] == latest["steps"]
    expected = expected_layers(latest, values, stat)
    layer_rows = [r for r in body["rows"] if not r["global"]]
    assert [r["layer"] for r in layer_rows] == list(expected)
    for row in layer_rows:
        np.testing.assert_allclose(values_of(row), expected[row["layer"]], rtol=5e-4, err_msg=row["layer"])
        assert row["values"] == bodies.json_values(values_of(row), DIGITS)  # 4 significant digits


@pytest.mark.parametrize("how", charts.REDUCES)
def test_thinned_columns_reduce_the_layer_value_of_each_step(api_client, logged, how):
    latest, values = logged(CNN)
    steps = latest["steps"]
    body = layer_heatmap(api_client, CNN, "gradient/l2", max_steps=4, reduce=how)
    assert body["reduce"] == how and len(body["steps"]) == 4 and body["logged_steps"] == len(steps)
    expected = expected_layers(latest, values, "gradient/l2")
    reduce = {"max": np.max, "min": np.min, "mean": np.mean, "last": lambda b: b[-1]}[how]
    for row in body["rows"][:-1]:
        per_step = expected[row["layer"]]
        buckets = [
            per_step[steps.index(first) : steps.index(last) + 1]
            for first, last in zip(body["first_steps"], body["steps"])
        ]
        np.testing.assert_allclose(values_of(row), [reduce(b) for b in buckets], rtol=5e-4)


def test_the_global_row_is_last_and_as_logged(api_client, logged):
    latest, values = logged(CNN)
    body = layer_heatmap(api_client, CNN, "gradient/l2")
    last = body["rows"][-1]
    assert last["global"] is True and last["layer"] == schema.GLOBAL_LAYER
    assert last["variables"] == [schema.GLOBAL_ROW]
    g = [r["variable"] for r in latest["rows"]].index(schema.GLOBAL_ROW)
    np.testing.assert_allclose(values_of(last), values[:, g, latest["stats"].index("gradient/l2")], rtol=5e-4)
    assert [r["global"] for r in body["rows"]].count(True) == 1


# -- rows ---------------------------------------------------------------------


@pytest.mark.parametrize("run", [CNN, plugin_logs.LOOP_RUN, HOSTILE])
def test_rows_are_the_layers_in_model_order_with_their_variables(api_client, logged, run):
    runs = {r["run"]: r for r in plugin_ok(api_client, "runs")["runs"]}
    latest, _ = logged(run)
    body = layer_heatmap(api_client, run, "weight/l2", max_steps=3)
    assert [r["layer"] for r in body["rows"]] == runs[run]["layers"] + [schema.GLOBAL_LAYER]
    assert [r["global"] for r in body["rows"]] == [False] * len(runs[run]["layers"]) + [True]
    # Every variable once, in the table's (model) order.
    assert [v for r in body["rows"] for v in r["variables"]] == [r["variable"] for r in latest["rows"]]
    for row in body["rows"]:
        assert set(row) == {"layer", "variables", "global", "values"} and len(row["values"]) == 3


def test_an_lstm_is_one_layer_of_its_gate_rows(api_client):
    body = layer_heatmap(api_client, HOSTILE, "weight/l2")
    lstm = body["rows"][0]
    assert lstm["layer"] == plugin_logs.HOSTILE_LAYER
    prefix = f"hostile/{plugin_logs.HOSTILE_LAYER}/lstm_cell/"
    assert lstm["variables"] == [
        f"{prefix}{variable}[{gate}]"
        for variable in ("kernel", "recurrent_kernel", "bias")
        for gate in ("input", "forget", "cell", "output")
    ]


def test_by_variable_is_the_default_and_says_so(api_client):
    default = plugin_ok(api_client, route("heatmap", run=CNN, stat="weight/l2"))
    chosen = plugin_ok(api_client, route("heatmap", run=CNN, stat="weight/l2", by="variable"))
    assert default == chosen and default["by"] == "variable"
    assert [r["variable"] for r in default["rows"]][:2] == ["rgb_cnn/rgb_conv/kernel", "rgb_cnn/rgb_conv/bias"]


# -- a run gone NaN -----------------------------------------------------------


def test_a_nan_weight_shows_in_its_layer_and_survives_thinning(api_client, logged):
    latest, _ = logged(NAN_RUN)
    steps = latest["steps"]
    gone = steps.index(plugin_logs.NAN_AT_BATCH + 1)  # the first step logged with NaN
    size = {"first": 6 * 8 + 8, "middle": 8 * 8 + 8, "last": 8 + 1}

    def by_layer(stat, **params):
        return {r["layer"]: r["values"] for r in layer_heatmap(api_client, NAN_RUN, stat, **params)["rows"]}

    nan_count, mean, l2 = by_layer("weight/nan_count"), by_layer("weight/mean"), by_layer("weight/l2")
    # Before: no NaN, every stat measured.
    assert nan_count["middle"][:gone] == [0.0] * gone
    assert all(isinstance(v, float) for v in mean["middle"][:gone])
    # From then on every layer is NaN (the model is linear: IEEE arithmetic
    # spreads it): every element counted, no finite value left to take a mean
    # of (null) and an l2 over no finite value: 0.
    for layer, n in size.items():
        assert nan_count[layer][gone:] == [float(n)] * (len(steps) - gone), layer
        assert mean[layer][gone:] == [None] * (len(steps) - gone), layer
        assert l2[layer][gone:] == [0.0] * (len(steps) - gone), layer
    # Thinned to one column, the NaN count is still there.
    assert by_layer("weight/nan_count", max_steps=1)["middle"] == [float(size["middle"])]
    assert by_layer("weight/mean", max_steps=1, reduce="last")["middle"] == [mean["middle"][gone - 1]]


@pytest.mark.parametrize("by", ["layer", "variable"])
@pytest.mark.parametrize("stat,kind", [("gradient/l2", "gradient"), ("weight/mean", "weight"), ("update/ratio", "weight")])
def test_cells_say_how_many_nan_or_inf_elements_their_value_leaves_out(api_client, logged, by, stat, kind):
    # After a NaN the norms over the finite elements read 0: the heatmap must
    # be told which cells are broken, or it paints them in the calmest colour.
    latest, values = logged(NAN_RUN)
    stats, rows = latest["stats"], latest["rows"]
    counts = values[:, :, stats.index(f"{kind}/nan_count")] + values[:, :, stats.index(f"{kind}/inf_count")]
    counts = np.nan_to_num(counts)
    answer = plugin_ok(api_client, route("heatmap", run=NAN_RUN, stat=stat, by=by))
    gone = latest["steps"].index(plugin_logs.NAN_AT_BATCH + 1)
    every = [i for i, r in enumerate(rows) if r["variable"] != schema.GLOBAL_ROW]
    for row in answer["rows"]:
        if row["global"]:
            members = every
        elif by == "layer":
            members = [i for i, r in enumerate(rows) if r["layer"] == row["layer"] and i in every]
        else:
            members = [i for i, r in enumerate(rows) if r["variable"] == row["variable"]]
        expected = counts[:, members].sum(axis=1)
        assert row["nonfinite"] == [int(c) for c in expected], row["layer"]
        assert row["nonfinite"][:gone] == [0] * gone and all(c > 0 for c in row["nonfinite"][gone:])
    # A healthy run's rows carry no counts at all.
    healthy = plugin_ok(api_client, route("heatmap", run=CNN, stat=stat, by=by))
    assert not any("nonfinite" in row for row in healthy["rows"])
    # Thinned, a bucket with one broken step is marked.
    thinned = plugin_ok(api_client, route("heatmap", run=NAN_RUN, stat=stat, by=by, max_steps=1))
    assert all(row["nonfinite"][0] > 0 for row in thinned["rows"])


# -- names --------------------------------------------------------------------


def test_a_layer_named_like_html_comes_back_verbatim(api_client):
    response, runs = plugin_get(api_client, "runs")
    hostile = next(r for r in runs["runs"] if r["run"] == HOSTILE)
    assert hostile["layers"] == plugin_logs.HOSTILE_LAYERS
    assert hostile["histograms"]["bins"] == [plugin_logs.HOSTILE_BINS]
    assert response.mimetype == "application/json"
    assert plugin_logs.HOSTILE_LAYER.encode() in response.get_data()  # not escaped, not mangled
    body = layer_heatmap(api_client, HOSTILE, "gradient/l2")
    assert [r["layer"] for r in body["rows"]] == plugin_logs.HOSTILE_LAYERS + [schema.GLOBAL_LAYER]
    assert len(body["steps"]) == plugin_logs.HOSTILE_STEPS
    assert all(isinstance(v, float) for r in body["rows"] for v in r["values"])
    json.dumps(body, allow_nan=False)


# -- errors -------------------------------------------------------------------


@pytest.mark.parametrize(
    "params, status, mentions",
    [
        ({"by": "gate"}, 400, "'by'"),
        ({"by": "Layer"}, 400, "'by'"),
        ({"by": "layer", "max_steps": "0"}, 400, "'max_steps'"),
        ({"by": "layer", "stat": "weight/l9"}, 404, "'weight/l9'"),
        ({"by": "layer", "run": "nope"}, 404, "'nope'"),
    ],
)
def test_a_bad_by_or_its_companions_are_named(api_client, params, status, mentions):
    response, body = plugin_get(api_client, route("heatmap", **{"run": CNN, "stat": "weight/l2", **params}))
    assert response.status_code == status, body
    assert mentions in body["error"]
