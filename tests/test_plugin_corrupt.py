"""Corrupt or mismatched data is skipped with a warning, never a failure.

The events are written with TensorBoard's own EventFileWriter (the way a
broken or foreign writer could), one problem each, beside good data."""

import json
import logging

import numpy as np
import pytest
from tensorboard import errors
from tensorboard.backend.event_processing import data_provider
from tensorboard.compat.proto import event_pb2, summary_pb2
from tensorboard.summary.writer.event_file_writer import EventFileWriter
from tensorboard.util import tensor_util

from conftest import plugin_client, plugin_get
from tb_weightnorm import metadata, reader
from tb_weightnorm.proto import plugin_data_pb2

NAMES = metadata.NormTableNames(("m/d/kernel", "m/d/bias"), ("d", "d"), ("weight/l2", "weight/nan_count"))
HIST = metadata.NormTableNames(("m/d/kernel",), ("d",), ())
GRID = "m/conv/kernel"
PNG = b"\x89PNG\r\n\x1a\n" + b"\x00" * 20  # only the signature matters to the server


def write(run_dir, events):
    """events: (step, tag, metadata, value) -> one event file."""
    writer = EventFileWriter(str(run_dir))
    for step, tag, meta, value in events:
        writer.add_event(
            event_pb2.Event(
                step=step,
                wall_time=1000.0 + step,
                summary=summary_pb2.Summary(
                    value=[
                        summary_pb2.Summary.Value(
                            tag=tag, metadata=meta, tensor=tensor_util.make_tensor_proto(value)
                        )
                    ]
                ),
            )
        )
    writer.close()


def blobs(*items):
    return np.array(list(items), dtype=object)


@pytest.fixture(scope="module")
def logdir(tmp_path_factory):
    logdir = tmp_path_factory.mktemp("corrupt")
    table = metadata.norm_table_metadata(NAMES)
    light = metadata.norm_table_metadata(NAMES, include_names=False)
    hist_tag = metadata.histogram_tag(HIST, 4)
    hist_md = metadata.histogram_metadata(HIST, ("weight", "gradient"), 4)
    hist_light = metadata.histogram_metadata(HIST, ("weight", "gradient"), 4, include_names=False)
    grid_tag = metadata.kernel_grid_tag(GRID)
    grid_md = metadata.kernel_grid_metadata("conv", GRID, "diverging", 2)
    newer = plugin_data_pb2.WeightHealthPluginData(version=metadata.PROTO_VERSION + 1)
    newer.norm_table.variables.append("x")
    newer.norm_table.layers.append("x")
    newer.norm_table.stats.append("weight/l2")
    newer_md = summary_pb2.SummaryMetadata(
        plugin_data=summary_pb2.SummaryMetadata.PluginData(
            plugin_name=metadata.PLUGIN_NAME, content=newer.SerializeToString()
        ),
        data_class=summary_pb2.DATA_CLASS_TENSOR,
    )
    garbage_md = summary_pb2.SummaryMetadata(
        plugin_data=summary_pb2.SummaryMetadata.PluginData(
            plugin_name=metadata.PLUGIN_NAME, content=b"\xff\xfe garbage"
        ),
        data_class=summary_pb2.DATA_CLASS_TENSOR,
    )
    write(
        logdir / "mixed",
        [
            (0, NAMES.tag(), table, np.array([[2.0, 0.0], [0.5, 0.0]], np.float32)),
            (1, NAMES.tag(), light, np.array([[2.1, 0.0], [0.6, 0.0]], np.float32)),
            (2, NAMES.tag(), light, np.zeros([3, 2], np.float32)),  # wrong shape
            (3, NAMES.tag(), light, np.array([["a", "b"], ["c", "d"]])),  # not numbers
            (0, metadata.NORM_TABLE_TAG_PREFIX + "newer", newer_md, np.zeros([1, 1], np.float32)),
            (0, metadata.HISTOGRAM_TAG_PREFIX + "garbage", garbage_md, np.zeros([2, 1, 9], np.float32)),
            (0, hist_tag, hist_md, np.ones([2, 1, 9], np.float32)),
            (1, hist_tag, hist_light, np.ones([2, 1, 5], np.float32)),  # wrong bins
            (0, grid_tag, grid_md, blobs(b"4", b"4", PNG)),  # 3 blobs
            (1, grid_tag, grid_md, blobs(b"four", b"4", PNG, b"{}")),
            (2, grid_tag, grid_md, blobs(b"4", b"4", PNG, b"not json")),
            (3, grid_tag, grid_md, blobs(b"4", b"4", b"GIF89a", b'{"scale": 1.0}')),
            (4, grid_tag, grid_md, blobs(b"4", b"5", PNG, b'{"scale": 0.5, "filters_shown": 2}')),
        ],
    )
    # A run whose only table lost its first event (the names).
    write(logdir / "nameless", [(5, NAMES.tag(), light, np.zeros([2, 2], np.float32))])
    return logdir


@pytest.fixture
def client(logdir):
    """A fresh plugin (nothing cached) per test."""
    client, _, _ = plugin_client(logdir)
    return client


def get(client, route):
    response, body = plugin_get(client, route)
    assert response.status_code in (200, 404), (response.status_code, body)
    return response.status_code, body


def test_bad_steps_and_series_are_skipped_and_the_rest_served(client, caplog, monkeypatch):
    monkeypatch.setattr(reader, "_warned", set())  # each problem is logged once per process
    caplog.set_level(logging.WARNING)
    status, runs = get(client, "runs")
    assert status == 200
    by_run = {r["run"]: r for r in runs["runs"]}
    assert by_run["mixed"]["variables"] == 2 and by_run["mixed"]["stats"] == list(NAMES.stats)
    assert by_run["mixed"]["histograms"]["bins"] == [4]
    assert by_run["mixed"]["kernel_grids"][0]["variable"] == GRID
    assert by_run["nameless"]["variables"] == 0

    status, table = get(client, "table?run=mixed")
    assert table["steps"] == [0, 1] and table["rows"][0]["values"] == [pytest.approx(2.1), 0.0]
    status, heatmap = get(client, "heatmap?run=mixed&stat=weight/l2")
    assert heatmap["steps"] == [0, 1]

    status, histograms = get(client, f"histograms?run=mixed&variable={HIST.variables[0]}&kind=weight")
    assert [h["step"] for h in histograms["runs"][0]["histograms"]] == [0]

    status, grids = get(client, f"kernel_grids?run=mixed&variable={GRID}")
    assert [(i["step"], i["width"], i["height"]) for i in grids["images"]] == [(3, 4, 4), (4, 4, 5)]
    assert grids["images"][1]["scale"] == 0.5 and grids["images"][0]["filters_shown"] is None
    status, png = get(client, f"kernel_image?run=mixed&variable={GRID}&step=4")
    assert status == 200 and png == PNG
    status, gif = get(client, f"kernel_image?run=mixed&variable={GRID}&step=3")
    assert status == 404 and "unreadable" in gif["error"]

    warnings = "\n".join(r.getMessage() for r in caplog.records if r.levelno == logging.WARNING)
    expected_warnings = (
        "step 2 of",
        "step 3 of",
        "newer tb_weightnorm",
        "garbage",
        "step 1 of " + metadata.HISTOGRAM_TAG_PREFIX,
        "3 blobs",
        "'four'",
        "step 2 of " + metadata.KERNEL_GRID_TAG_PREFIX,
        "not a PNG",
    )
    for expected in expected_warnings:
        assert expected in warnings, expected


def test_a_run_with_no_readable_table_is_not_found_and_skipped_by_findings(client):
    status, body = get(client, "table?run=nameless")
    assert status == 404 and "'nameless'" in body["error"]
    status, findings = get(client, "findings")
    assert findings["runs"] == ["mixed"]
    assert [s["run"] for s in findings["skipped"]] == ["nameless"]
    json.dumps(findings, allow_nan=False)


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
