"""Every route of the plugin, fed missing, malformed, huge and hostile query
parameters by hypothesis, over logs of real training read by TensorBoard's
own data provider: it answers 200, 400 or 404, never a server error, and an
error is a short JSON message without a traceback."""

import json
import shutil
import urllib.parse

import keras
import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from support import plugin_logs
from support.plugin_calls import plugin_client
from tb_weightnorm import plugin, snapshots
from tb_weightnorm.plugin import params

# The parameters each route reads (http_api.md).
ROUTES = {
    "index.js": [],
    "runs": [],
    "table": ["run", "step"],
    "series": ["run", "stat", "variable", "max_steps", "reduce"],
    "heatmap": ["run", "stat", "by", "max_steps", "reduce"],
    "compare": ["run", "stat", "variable", "layer", "max_steps", "reduce"],
    "histograms": ["run", "variable", "kind", "max_steps"],
    "kernel_grids": ["run", "variable"],
    "kernel_image": ["run", "variable", "step"],
    "findings": ["run"],
    "snapshots": ["run"],
    "snapshot_distance": ["run", "from", "to"],
}
# Runs given weight snapshots of these epochs (one of them NaN) for the fuzz.
SNAPSHOT_RUNS = [plugin_logs.CNN_RUN, plugin_logs.HOSTILE_RUN]
SNAPSHOT_EPOCHS = [0, 1, 3]
NOT_JSON = {"index.js": "text/javascript", "kernel_image": "image/png"}
# Examples per route: together well under a minute over cached runs.
EXAMPLES = 60

HOSTILE = [
    "..",
    "../..",
    "../../../../etc/passwd",
    "..\\..\\windows\\win.ini",
    "/etc/passwd",
    "cnn/../cnn/train",
    "cnn/train\x00",
    "\x00",
    " ",
    "cnn/train ",
    "<script>alert(1)</script>",
    plugin_logs.HOSTILE_LAYER,
    "' OR 1=1 --",
    "%s%s%s%n",
    "*",
    "cnn/*",
    "[!a-z]?*",
    ".*",
    "weight/*",
    "{}",
    "\u202etxt.exe",
    "\ud7ff\ufffd\uffff",
    "e\u0301\u0301\u0301",
    "\U0001f525" * 50,
    "x" * 5000,
    "9" * 40,
    "-" + "9" * 19,
    "9223372036854775808",
    "-9223372036854775809",
    "1e3",
    "0x10",
    "1_000",
    " 7",
    "\uff17",  # a full-width 7
    "NaN",
    "Infinity",
    "-1",
    "0",
]
NUMBERS = st.one_of(
    st.integers(min_value=-(2**70), max_value=2**70).map(str),
    st.floats(allow_nan=True, allow_infinity=True).map(repr),
)
LONG = st.builds(
    lambda piece, n: piece * n,
    st.sampled_from(["x", "\u00e9", "\U0001f525", "<", "\x00", "../", "%", "9"]),
    st.integers(200, 20_000),
)
BAD_VALUES = st.one_of(st.sampled_from(HOSTILE), NUMBERS, LONG, st.text(max_size=30), st.just(""))
# Parameters that are not any route's, and mangled names of real ones.
OTHER_KEYS = ["x", "", "run[]", "Run", "step ", "max_steps\x00", "__proto__"]


def names(client):
    """Real values of each parameter, by run: its stats, variables, layers,
    logged steps and kernel grid variables and steps."""

    def get(route, **params):
        return json.loads(client.get(f"/data/plugin/weight_health/{route}", query_string=params).get_data())

    known = {}
    for run in get("runs")["runs"]:
        table = get("table", run=run["run"])
        grids = [g["variable"] for g in run["kernel_grids"]]
        grid_steps = [i["step"] for g in grids for i in get("kernel_grids", run=run["run"], variable=g)["images"]]
        known[run["run"]] = {
            "stat": run["stats"],
            "variable": [row["variable"] for row in table["rows"]],
            "kernel_variable": grids,
            "layer": run["layers"],
            "step": [str(s) for s in table["steps"][:3] + table["steps"][-3:]],
            "kernel_step": [str(s) for s in grid_steps],
            "snapshot_epoch": [str(s["epoch"]) for s in get("snapshots", run=run["run"])["snapshots"]],
        }
    return known


# Values of the parameters that are no names.
CHOICES = {
    "max_steps": ["1", "3", "5000", "5001"],
    "reduce": ["max", "min", "mean", "last"],
    "by": ["variable", "layer"],
    "kind": ["weight", "gradient"],
}


def save_snapshots(run_dir):
    """Snapshots of a small model of hostile names; its weights drift from
    one epoch to the next and turn NaN in the last."""
    keras.utils.set_random_seed(3)
    model = keras.Sequential(
        [keras.Input((3,)), keras.layers.Dense(4, name=plugin_logs.HOSTILE_LAYER), keras.layers.Dense(1, name="out")]
    )
    for epoch in SNAPSHOT_EPOCHS:
        if epoch == SNAPSHOT_EPOCHS[-1]:
            model.layers[-1].bias.assign([np.nan])
        snapshots.save(model, run_dir, epoch=epoch)
        for variable in model.trainable_variables:
            variable.assign(variable + 0.1)


@pytest.fixture(scope="module")
def fuzzed(api_logdir, tmp_path_factory):
    # A copy: the snapshots would show in the tab tests over api_logdir.
    logdir = tmp_path_factory.mktemp("fuzz_logs") / "logs"
    shutil.copytree(api_logdir, logdir)
    for run in SNAPSHOT_RUNS:
        save_snapshots(str(logdir / run))
    client, _, _ = plugin_client(logdir)
    return client, names(client)


def raw_escapes(data: bytes) -> str:
    """Bytes as percent-escapes, whatever they are: not always UTF-8."""
    return "".join(f"%{b:02X}" for b in data)


@st.composite
def queries(draw, route, known):
    """A raw query string for `route`: its parameters with real values, then
    some of them dropped, repeated or given bad values (hostile, numeric,
    huge, random, empty), and other parameters added; percent-encoded as
    UTF-8 or as arbitrary bytes."""
    kernel = route.startswith("kernel")
    # Mostly a run with the data the route serves, so that some answers are 200.
    needs = "kernel_variable" if kernel else "snapshot_epoch" if route.startswith("snapshot") else None
    run = draw(st.sampled_from(sorted(r for r, n in known.items() if needs is None or n[needs])))
    of_run = dict(known[run], run=sorted(known), **CHOICES)
    if kernel:
        of_run.update(variable=of_run["kernel_variable"], step=of_run["kernel_step"])
    of_run.update({"from": of_run["snapshot_epoch"] or ["0"], "to": of_run["snapshot_epoch"] or ["1"]})
    pairs = []
    for key in ROUTES[route]:
        # Mostly once: hypothesis draws the ends of a range often, so the
        # rarer cases (dropped, repeated) are in its middle.
        copies = draw(st.integers(0, 19))
        for copy in range(0 if copies == 9 else 2 if copies == 10 else 1):
            # The names are the drawn run's; a second run may be any.
            own_run = key == "run" and copy == 0
            pairs.append((key, run if own_run else draw(st.sampled_from(of_run[key]))))
    for i in range(len(pairs)):
        if draw(st.integers(0, 19)) in (9, 10):
            pairs[i] = (pairs[i][0], draw(BAD_VALUES))
    for _ in range(draw(st.integers(0, 2))):
        pairs.append((draw(st.sampled_from(OTHER_KEYS)), draw(BAD_VALUES)))
    pairs = draw(st.permutations(pairs))
    parts = []
    for key, value in pairs:
        if draw(st.integers(0, 9)) == 0:
            encoded = raw_escapes(draw(st.binary(min_size=1, max_size=12)))
        else:
            encoded = urllib.parse.quote(value.encode("utf-8", "surrogatepass"), safe="")
        parts.append(f"{urllib.parse.quote(key)}={encoded}" if draw(st.integers(0, 19)) else encoded)
    return "&".join(parts)


def check_response(route, response):
    body = response.get_data()
    assert b"Traceback" not in body and b'File "' not in body, body[:500]
    assert response.status_code in (200, 400, 404), (response.status_code, body[:500])
    if response.status_code == 200 and route in NOT_JSON:
        assert response.mimetype == NOT_JSON[route]
        return
    assert response.mimetype == "application/json", response.mimetype

    def no_constants(name):
        raise AssertionError(f"{name} in a JSON response")

    parsed = json.loads(body, parse_constant=no_constants)
    if response.status_code != 200:
        assert set(parsed) == {"error"} and parsed["error"], parsed
        # Names and values repeated in a message are cut short.
        assert len(parsed["error"]) < 1000, len(parsed["error"])


def test_every_route_is_fuzzed():
    routes = plugin.WeightHealthPlugin.get_plugin_apps(object.__new__(plugin.WeightHealthPlugin))
    assert sorted(r.lstrip("/") for r in routes) == sorted(ROUTES)


@pytest.mark.parametrize("route", sorted(ROUTES))
def test_a_route_answers_any_query_with_200_400_or_404(fuzzed, route):
    client, known = fuzzed

    @settings(
        max_examples=EXAMPLES,
        deadline=None,
        derandomize=True,  # the same examples in every run of the suite
        database=None,
        suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
    )
    @given(query=queries(route, known))
    def answers(query):
        response = client.get(f"/data/plugin/weight_health/{route}", query_string=query)
        check_response(route, response)
        statuses.add(response.status_code)

    statuses = set()
    answers()
    # Some examples reached past the parameters into the data (most others
    # end in an error, and test_plugin_api.py names the expected ones).
    assert 200 in statuses, statuses


@pytest.mark.parametrize(
    "query, mentions",
    [
        ("run=loop&run=loop", "'run' is given 2 times"),
        ("run=loop&step=0&step=1", "'step' is given 2 times"),
        ("run=loop&step=99999999999999999999999", "'step' must be an integer from"),
        ("run=loop&step=9223372036854775808", "'step' must be an integer from"),
        ("run=loop&step=1_0", "'step' must be an integer"),
        ("run=loop&step=%EF%BC%97", "'step' must be an integer"),  # a full-width 7
        ("run=loop&step=%207", "'step' must be an integer"),
    ],
)
def test_numbers_and_single_parameters_are_strict(fuzzed, query, mentions):
    client, _ = fuzzed
    response = client.get("/data/plugin/weight_health/table", query_string=query)
    assert response.status_code == 400
    assert mentions in json.loads(response.get_data())["error"]


def test_steps_at_the_ends_of_int64_are_not_found(fuzzed):
    client, _ = fuzzed
    for step in (params.INT64_MAX, params.INT64_MIN):
        response = client.get("/data/plugin/weight_health/table", query_string=f"run={plugin_logs.LOOP_RUN}&step={step}")
        assert response.status_code == 404, response.get_data()
        assert f"no logged step {step}" in json.loads(response.get_data())["error"]


def test_long_names_are_cut_short_in_messages(fuzzed):
    client, _ = fuzzed
    run = "r" * 100_000
    response = client.get("/data/plugin/weight_health/heatmap", query_string=f"run={run}&stat=weight/l2")
    assert response.status_code == 404
    error = json.loads(response.get_data())["error"]
    assert "(100000 characters)" in error and len(error) < 400


def test_names_with_nul_bytes_and_dot_dot_are_unknown_runs(fuzzed):
    client, _ = fuzzed
    for run in ["loop\x00", "../loop", "loop/..", "./loop", "/loop"]:
        response = client.get("/data/plugin/weight_health/table", query_string={"run": run})
        assert response.status_code == 404, run
        assert repr(run) in json.loads(response.get_data())["error"]
