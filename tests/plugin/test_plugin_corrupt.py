"""Corrupt or mismatched data is skipped with a warning, never a failure.

The events are written with TensorBoard's own EventFileWriter and with
`tf.summary` writers (the way a broken or foreign writer could), one problem
each, beside good data; they are read by TensorBoard's Python data provider,
by a real `tensorboard` process (its default, Rust loader) and by
`tb_weightnorm.load`. Each problem is logged once per time series, however
many steps it spoils and however often the tab asks."""

import json
import logging
import zlib

import numpy as np
import pytest
from tensorboard import errors
from tensorboard.backend.event_processing import data_provider
from tensorboard.compat.proto import event_pb2, summary_pb2, tensor_pb2, tensor_shape_pb2, types_pb2
from tensorboard.summary.writer.event_file_writer import EventFileWriter
from tensorboard.util import tensor_util

from support.plugin_calls import plugin_client, plugin_get
from support.servers import tensorboard_process, wait_for_json
from tb_weightnorm import schema
from tb_weightnorm.read import norm_tables
from tb_weightnorm.wire import metadata, table_codec
from tb_weightnorm.wire.proto import plugin_data_pb2

NAMES = schema.NormTableNames(("m/d/kernel", "m/d/bias"), ("d", "d"), ("weight/l2", "weight/nan_count"))
# A second table of another model logged to the same run.
OTHER = schema.NormTableNames(("o/e/kernel",), ("e",), ("weight/l2",))
HIST = schema.NormTableNames(("m/d/kernel",), ("d",), ())
HIST_OTHER = schema.NormTableNames(("m/d/bias",), ("d",), ())
GRID = "m/conv/kernel"
PNG = b"\x89PNG\r\n\x1a\n" + b"\x00" * 20  # only the signature matters to the server
GOOD_STEPS = [0, 1, 8]  # of run "mixed"
TF_GOOD_STEPS = [0, 2]


def write(run_dir, events):
    """events: (step, tag, metadata, value: ndarray or TensorProto[, wall_time]) -> one event file."""
    writer = EventFileWriter(str(run_dir))
    for step, tag, meta, value, *wall_time in events:
        tensor = value if isinstance(value, tensor_pb2.TensorProto) else tensor_util.make_tensor_proto(value)
        writer.add_event(
            event_pb2.Event(
                step=step,
                wall_time=wall_time[0] if wall_time else 1000.0 + step,
                summary=summary_pb2.Summary(value=[summary_pb2.Summary.Value(tag=tag, metadata=meta, tensor=tensor)]),
            )
        )
    writer.close()


def blobs(*items):
    return np.array(list(items), dtype=object)


def plugin_metadata(content: bytes, data_class=summary_pb2.DATA_CLASS_TENSOR):
    return summary_pb2.SummaryMetadata(
        plugin_data=summary_pb2.SummaryMetadata.PluginData(plugin_name=metadata.PLUGIN_NAME, content=content),
        data_class=data_class,
    )


def norm_table_content(variables, layers, stats, derived=()):
    """Plugin data of a norm table, built by hand so that it can be inconsistent."""
    table = plugin_data_pb2.NormTable(variables=variables, layers=layers, stats=stats, derived_stats=derived)
    return plugin_data_pb2.WeightHealthPluginData(version=metadata.PROTO_VERSION, norm_table=table).SerializeToString()


def float_tensor(shape, content: bytes = b"", dtype=types_pb2.DT_FLOAT):
    """A TensorProto whose bytes need not fill its shape."""
    dims = [tensor_shape_pb2.TensorShapeProto.Dim(size=d) for d in shape]
    return tensor_pb2.TensorProto(dtype=dtype, tensor_shape=tensor_shape_pb2.TensorShapeProto(dim=dims), tensor_content=content)


def encoded(values) -> np.ndarray:
    """A table as the writer stores it: one string of table_codec bytes."""
    return np.array(table_codec.encode(np.asarray(values, np.float32)), dtype=object)


def write_mixed(run_dir):
    """Good and bad steps and series of every kind in one run."""
    table = metadata.norm_table_metadata(NAMES)
    light = metadata.norm_table_metadata(NAMES, include_names=False)
    good = encoded([[2.1, 0.0], [0.6, 0.0]]).item()
    bomb = bytes([table_codec.SHUFFLED_DEFLATE]) + zlib.compress(b"\x00" * (64 << 20))
    hist_tag = metadata.histogram_tag(HIST, 4)
    hist_md = metadata.histogram_metadata(HIST, ("weight", "gradient"), 4)
    hist_light = metadata.histogram_metadata(HIST, ("weight", "gradient"), 4, include_names=False)
    nan_counts = np.ones([2, 1, 9], np.float32)
    nan_counts[0, 0, 3:5] = np.nan
    grid_tag = metadata.kernel_grid_tag(GRID)
    grid_md = metadata.kernel_grid_metadata("conv", GRID, "diverging", 2)
    newer = plugin_data_pb2.WeightHealthPluginData(version=metadata.PROTO_VERSION + 1)
    newer.norm_table.variables.append("x")
    newer.norm_table.layers.append("x")
    newer.norm_table.stats.append("weight/l2")
    prefix = metadata.NORM_TABLE_TAG_PREFIX
    write(
        run_dir,
        [
            (0, metadata.norm_table_tag(NAMES), table, np.array([[2.0, 0.0], [0.5, 0.0]], np.float32)),  # format 1
            (1, metadata.norm_table_tag(NAMES), light, encoded([[2.1, 0.0], [0.6, 0.0]])),
            (2, metadata.norm_table_tag(NAMES), light, np.zeros([3, 2], np.float32)),  # wrong shape
            (3, metadata.norm_table_tag(NAMES), light, np.array([["a", "b"], ["c", "d"]])),  # not numbers
            (4, metadata.norm_table_tag(NAMES), light, np.array(good[: len(good) // 2], dtype=object)),  # truncated
            (5, metadata.norm_table_tag(NAMES), light, np.array(good[:3] + bytes([good[3] ^ 0xFF]) + good[4:], dtype=object)),
            (6, metadata.norm_table_tag(NAMES), light, np.array(b"\x07" + good[1:], dtype=object)),  # unknown format
            (7, metadata.norm_table_tag(NAMES), light, np.array(bomb, dtype=object)),  # inflates to 64 MB
            (8, metadata.norm_table_tag(NAMES), light, encoded([[2.2, 0.0], [0.7, 0.0]])),
            (9, metadata.norm_table_tag(NAMES), light, np.array([good, good], dtype=object)),  # two tables in one
            (10, metadata.norm_table_tag(NAMES), light, np.array(True)),  # a bool scalar
            (0, prefix + "newer", plugin_metadata(newer.SerializeToString()), np.zeros([1, 1], np.float32)),
            (0, prefix + "garbage", plugin_metadata(b"\xff\xfe garbage"), np.zeros([1, 1], np.float32)),
            (0, prefix + "rows", plugin_metadata(norm_table_content(["a", "b"], ["l"], ["weight/l2"])), np.zeros([2, 1], np.float32)),
            (0, prefix + "underived", plugin_metadata(norm_table_content(["a"], ["l"], ["weight/l2", "update/ratio"], ["update/ratio"])), np.zeros([1, 1], np.float32)),
            (0, prefix + "not_a_table", metadata.histogram_metadata(HIST, ("weight",), 4), np.zeros([1, 1], np.float32)),
            (0, metadata.HISTOGRAM_TAG_PREFIX + "garbage", plugin_metadata(b"\xff\xfe garbage"), np.zeros([2, 1, 9], np.float32)),
            (0, hist_tag, hist_md, np.ones([2, 1, 9], np.float32)),
            (1, hist_tag, hist_light, np.ones([2, 1, 5], np.float32)),  # wrong bins
            (2, hist_tag, hist_light, nan_counts),  # counts that are not numbers
            (0, metadata.histogram_tag(HIST_OTHER, 4), metadata.histogram_metadata(HIST_OTHER, ("weight",), 4), float_tensor([1, 1, 9], b"abc")),
            (0, grid_tag, grid_md, blobs(b"4", b"4", PNG)),  # 3 blobs
            (1, grid_tag, grid_md, blobs(b"four", b"4", PNG, b"{}")),
            (2, grid_tag, grid_md, blobs(b"4", b"4", PNG, b"not json")),
            (3, grid_tag, grid_md, blobs(b"4", b"4", b"GIF89a", b'{"scale": 1.0}')),
            (4, grid_tag, grid_md, blobs(b"4", b"5", PNG, b'{"scale": 0.5, "filters_shown": 2}')),
            (5, grid_tag, grid_md, blobs(b"4", b"1000000000", PNG, b"{}")),  # absurd size
            (6, grid_tag, grid_md, blobs(b"4", b"4", PNG, b'{"scale": "NaN", "filters_shown": 1.5}')),
            (0, metadata.KERNEL_GRID_TAG_PREFIX + "garbage", plugin_metadata(b"\x08\x01\x22\xff", summary_pb2.DATA_CLASS_BLOB_SEQUENCE), blobs(b"4", b"4", PNG, b"{}")),
        ],
    )


def write_with_tf_summary(run_dir):
    """A norm table written by `tf.summary.write`, as `tb_weightnorm.log` does,
    one step of it cut short."""
    import tensorflow as tf

    writer = tf.summary.create_file_writer(str(run_dir))
    good = table_codec.encode(np.array([[3.0, 0.0], [1.0, 0.0]], np.float32))
    with writer.as_default():
        tf.summary.write(metadata.norm_table_tag(NAMES), tf.constant(good), step=0, metadata=metadata.norm_table_metadata(NAMES))
        light = metadata.norm_table_metadata(NAMES, include_names=False)
        tf.summary.write(metadata.norm_table_tag(NAMES), tf.constant(good[:-5]), step=1, metadata=light)
        tf.summary.write(metadata.norm_table_tag(NAMES), tf.constant(good), step=2, metadata=light)
    writer.close()


@pytest.fixture(scope="module")
def logdir(tmp_path_factory):
    logdir = tmp_path_factory.mktemp("corrupt")
    write_mixed(logdir / "mixed")
    # A run whose only table lost its first event (the names).
    write(logdir / "nameless", [(5, metadata.norm_table_tag(NAMES), metadata.norm_table_metadata(NAMES, include_names=False), np.zeros([2, 2], np.float32))])
    # Two tables, one of them with tensors no data provider can decode.
    write(
        logdir / "undecodable",
        [
            (0, metadata.norm_table_tag(NAMES), metadata.norm_table_metadata(NAMES), np.ones([2, 2], np.float32)),
            (1, metadata.norm_table_tag(NAMES), metadata.norm_table_metadata(NAMES, include_names=False), np.ones([2, 2], np.float32)),
            (0, metadata.norm_table_tag(OTHER), metadata.norm_table_metadata(OTHER), np.ones([1, 1], np.float32)),
            (1, metadata.norm_table_tag(OTHER), metadata.norm_table_metadata(OTHER, include_names=False), float_tensor([1, 1], b"abc")),
        ],
    )
    write_with_tf_summary(logdir / "tf_written")
    # A step whose event has no usable wall time (TensorBoard's Rust loader
    # stops reading the file there: it is alone in its run).
    light = metadata.norm_table_metadata(NAMES, include_names=False)
    write(
        logdir / "no_time",
        [
            (0, metadata.norm_table_tag(NAMES), metadata.norm_table_metadata(NAMES), np.ones([2, 2], np.float32)),
            (1, metadata.norm_table_tag(NAMES), light, np.ones([2, 2], np.float32), float("nan")),
            (2, metadata.norm_table_tag(NAMES), light, np.ones([2, 2], np.float32), float("inf")),
        ],
    )
    return logdir


@pytest.fixture
def fresh_warnings(monkeypatch, caplog):
    """Every problem not yet logged (they are logged once per process)."""
    monkeypatch.setattr(norm_tables, "_warned", set())
    caplog.set_level(logging.WARNING)
    return caplog


@pytest.fixture
def client(logdir):
    """A fresh plugin (nothing cached) per test."""
    client, _, _ = plugin_client(logdir)
    return client


def get(client, route):
    response, body = plugin_get(client, route)
    assert response.status_code in (200, 404), (response.status_code, body)
    return response.status_code, body


def warnings_of(caplog):
    return [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]


def test_bad_steps_and_series_are_skipped_and_the_rest_served(client, fresh_warnings):
    status, runs = get(client, "runs")
    assert status == 200
    by_run = {r["run"]: r for r in runs["runs"]}
    assert by_run["mixed"]["variables"] == 2 and by_run["mixed"]["stats"] == list(NAMES.stats)
    assert by_run["mixed"]["histograms"]["bins"] == [4]
    assert [g["variable"] for g in by_run["mixed"]["kernel_grids"]] == [GRID]
    assert by_run["nameless"]["variables"] == 0

    status, table = get(client, "table?run=mixed")
    assert table["steps"] == GOOD_STEPS and table["rows"][0]["values"] == [pytest.approx(2.2), 0.0]
    assert table["wall_time"] == 1008.0
    status, heatmap = get(client, "heatmap?run=mixed&stat=weight/l2")
    assert heatmap["steps"] == GOOD_STEPS
    assert get(client, "findings?run=mixed")[0] == 200
    # Wall times that are no time are null, never a failed response.
    status, no_time = get(client, "series?run=no_time&stat=weight/l2")
    assert no_time["wall_times"] == [1000.0, None, None]
    assert get(client, "table?run=no_time&step=1")[1]["wall_time"] is None

    status, histograms = get(client, f"histograms?run=mixed&variable={HIST.variables[0]}&kind=weight")
    steps = histograms["runs"][0]["histograms"]
    assert [h["step"] for h in steps] == [0, 2]
    assert steps[1]["counts"] == [1, None, None, 1] and steps[1]["min"] == 1.0
    status, body = get(client, f"histograms?run=mixed&variable={HIST_OTHER.variables[0]}&kind=weight")
    assert status == 404 and "'m/d/bias'" in body["error"]

    status, grids = get(client, f"kernel_grids?run=mixed&variable={GRID}")
    assert [(i["step"], i["width"], i["height"]) for i in grids["images"]] == [(3, 4, 4), (4, 4, 5), (6, 4, 4)]
    assert grids["images"][1]["scale"] == 0.5 and grids["images"][0]["filters_shown"] is None
    assert grids["images"][2]["scale"] is None and grids["images"][2]["filters_shown"] is None
    status, png = get(client, f"kernel_image?run=mixed&variable={GRID}&step=4")
    assert status == 200 and png == PNG
    status, gif = get(client, f"kernel_image?run=mixed&variable={GRID}&step=3")
    assert status == 404 and "unreadable" in gif["error"]

    warnings = "\n".join(warnings_of(fresh_warnings))
    expected_warnings = (
        f"skipping 8 of the 11 steps of {metadata.norm_table_tag(NAMES)} in run 'mixed'",
        "step 2: a float32 tensor of shape (3, 2), expected numbers of shape (2, 2)",
        "step 3: a object tensor",
        "step 4: table holds 8 bytes, expected 16",
        "and 5 more",
        "newer tb_weightnorm",
        "norms/garbage of run 'mixed': corrupt plugin data",
        "2 variable names but 1 layer names",
        "'update/ratio' is neither stored nor computable",
        "not_a_table of run 'mixed': plugin data is not a norm table",
        "histograms/garbage of run 'mixed': corrupt plugin data",
        f"skipping 1 of the 3 steps of {metadata.histogram_tag(HIST, 4)}",
        f"skipping {metadata.histogram_tag(HIST_OTHER, 4)} of run 'mixed': TensorBoard's data provider cannot decode",
        "3 blobs",
        "'four'",
        f"skipping 4 of the 7 steps of {metadata.kernel_grid_tag(GRID)}",
        "; and 1 more)",  # step 5, 1000000000 pixels high
        f"{metadata.KERNEL_GRID_TAG_PREFIX}garbage of run 'mixed'",
        "not a PNG",
    )
    for expected in expected_warnings:
        assert expected in warnings, expected


def test_each_problem_is_logged_once_per_series_not_per_request(logdir, fresh_warnings):
    routes = [
        "runs",
        "table?run=mixed",
        "heatmap?run=mixed&stat=weight/l2",
        f"histograms?run=mixed&variable={HIST.variables[0]}&kind=weight",
        f"kernel_grids?run=mixed&variable={GRID}",
        f"kernel_image?run=mixed&variable={GRID}&step=3",
        "findings",
        "table?run=undecodable",
    ]
    for _ in range(2):
        client, _, _ = plugin_client(logdir)  # nothing cached: every series read again
        for _ in range(3):
            for route in routes:
                get(client, route)
    warnings = warnings_of(fresh_warnings)
    assert len(warnings) == len(set(warnings)), [w for w in warnings if warnings.count(w) > 1]
    per_series = [w for w in warnings if metadata.norm_table_tag(NAMES) + " in run 'mixed'" in w]
    assert len(per_series) == 1, per_series
    assert sum("not a PNG" in w for w in warnings) == 1


def test_a_series_the_data_provider_cannot_decode_costs_only_that_series(client, fresh_warnings):
    status, table = get(client, "table?run=undecodable")
    assert status == 200 and table["steps"] == [0, 1]
    assert [row["variable"] for row in table["rows"]] == list(NAMES.variables)
    (warning,) = [w for w in warnings_of(fresh_warnings) if "cannot decode" in w]
    assert metadata.norm_table_tag(OTHER) in warning and "'undecodable'" in warning and "ValueError" in warning


def test_a_table_written_by_tf_summary_keeps_its_good_steps(client, fresh_warnings):
    status, table = get(client, "table?run=tf_written")
    assert table["steps"] == TF_GOOD_STEPS and table["rows"][0]["values"] == [3.0, 0.0]
    assert any("step 1: table bytes end before their deflate stream does" in w for w in warnings_of(fresh_warnings))


def test_a_run_with_no_readable_table_is_not_found_and_skipped_by_findings(client):
    status, body = get(client, "table?run=nameless")
    assert status == 404 and "'nameless'" in body["error"]
    status, findings = get(client, "findings")
    assert findings["runs"] == ["mixed", "no_time", "tf_written", "undecodable"]
    assert [s["run"] for s in findings["skipped"]] == ["nameless"]
    json.dumps(findings, allow_nan=False)


def test_the_python_reader_skips_the_same_and_keeps_the_rest(logdir, fresh_warnings):
    import tb_weightnorm

    frame = tb_weightnorm.load(str(logdir))
    steps = frame.groupby("run")["step"].unique().map(sorted).to_dict()
    assert steps == {"mixed": GOOD_STEPS, "no_time": [0, 1, 2], "tf_written": TF_GOOD_STEPS, "undecodable": [0, 1]}
    no_time = frame[frame.run == "no_time"].groupby("step")["wall_time"].first()
    assert no_time[0] == 1000.0 and no_time[[1, 2]].isna().all()
    assert set(frame[frame.run == "undecodable"]["variable"]) == set(NAMES.variables)
    warnings = "\n".join(warnings_of(fresh_warnings))
    assert f"skipping 8 of the 11 steps of {metadata.norm_table_tag(NAMES)} in run 'mixed'" in warnings
    assert "cannot decode" in warnings and "'nameless'" in warnings


def test_a_real_tensorboard_serves_the_rest(logdir):
    """Under TensorBoard's default loader, which loads in the background:
    each route is asked until it shows what it should."""
    runs = ["mixed", "nameless", "no_time", "tf_written", "undecodable"]
    with tensorboard_process(logdir) as base:

        def shows(route, predicate):
            wait_for_json(base + "/data/plugin/weight_health/" + route, predicate)

        shows("runs", lambda body: [r["run"] for r in body["runs"]] == runs)
        shows("table?run=mixed", lambda body: body["steps"] == GOOD_STEPS)
        shows("table?run=tf_written", lambda body: body["steps"] == TF_GOOD_STEPS)
        # What this loader keeps of the run with no wall time: step 0, served.
        shows("table?run=no_time", lambda body: body["steps"][0] == 0)
        shows("table?run=undecodable", lambda body: [r["variable"] for r in body["rows"]] == list(NAMES.variables))
        shows("heatmap?run=mixed&stat=weight/l2", lambda body: body["steps"] == GOOD_STEPS)
        shows(
            f"histograms?run=mixed&variable={HIST.variables[0]}&kind=weight",
            lambda body: [h["step"] for h in body["runs"][0]["histograms"]] == [0, 2],
        )
        shows(f"kernel_grids?run=mixed&variable={GRID}", lambda body: [i["step"] for i in body["images"]] == [3, 4, 6])
        shows("findings", lambda body: body["runs"] == ["mixed", "no_time", "tf_written", "undecodable"])


class FailingProvider(data_provider.MultiplexerDataProvider):
    """TensorBoard's Python data provider whose reads fail, as a stopped data
    server's would."""

    def read_tensors(self, *args, **kwargs):
        raise RuntimeError("connection to the data server lost")

    def read_blob_sequences(self, *args, **kwargs):
        raise errors.NotFoundError("blob sequence gone")


def test_a_failing_data_provider_is_a_503_without_a_traceback(logdir, caplog):
    client, _, _ = plugin_client(logdir, FailingProvider)
    response, body = plugin_get(client, "table?run=mixed")
    assert response.status_code == 503
    assert "Traceback" not in body["error"] and "connection" not in body["error"]
    assert "connection to the data server lost" in caplog.text  # the log has the details
    response, body = plugin_get(client, f"kernel_grids?run=mixed&variable={GRID}")
    assert response.status_code == 404 and "blob sequence gone" in body["error"]
    assert plugin_get(client, "runs")[0].status_code == 200  # listings still work
