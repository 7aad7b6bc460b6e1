"""The plugin's index of a run's event files, on real event files."""

import logging
import os
import shutil
import struct
import threading
import time

import numpy as np
import pytest
from tensorboard.backend.event_processing import event_file_loader
from tensorboard.compat.proto import event_pb2, summary_pb2
from tensorboard.compat.tensorflow_stub.pywrap_tensorflow import masked_crc32c as tb_masked_crc32c
from tensorboard.summary.writer.event_file_writer import EventFileWriter
from tensorboard.summary.writer.record_writer import RecordWriter
from tensorboard.util import tensor_util

from tb_weightnorm import schema
from tb_weightnorm.read import event_index, event_prefix, norm_tables
from tb_weightnorm.wire import event_files, metadata, table_codec

NAMES = schema.NormTableNames(
    variables=("m/dense/kernel", "m/dense/bias", "m/out/kernel"),
    layers=("dense", "dense", "out"),
    stats=("weight/l2", "gradient/l2"),
)
TAG = metadata.norm_table_tag(NAMES)
SHAPE = (len(NAMES.variables), len(NAMES.stored_stats))


def table(step, salt=0.0):
    return (np.arange(np.prod(SHAPE), dtype=np.float32).reshape(SHAPE) + step + salt).astype(np.float32)


def table_value(step, *, first=False, salt=0.0, tag=TAG):
    return summary_pb2.Summary.Value(
        tag=tag,
        tensor=tensor_util.make_tensor_proto(table_codec.encode(table(step, salt))),
        metadata=metadata.norm_table_metadata(NAMES, include_names=first),
    )


def table_event(step, *, first=False, salt=0.0, tag=TAG, wall_time=None):
    return event_pb2.Event(
        wall_time=1.7e9 + step * 0.5 if wall_time is None else wall_time,
        step=step,
        summary=summary_pb2.Summary(value=[table_value(step, first=first, salt=salt, tag=tag)]),
    )


def scalar_value(tag="loss"):
    return summary_pb2.Summary.Value(tag=tag, simple_value=0.5)


def scalar_event(step, tag="loss"):
    return event_pb2.Event(wall_time=1.7e9 + step, step=step, summary=summary_pb2.Summary(value=[scalar_value(tag)]))


def write_events(folder, events, name=None):
    """The path of a new event file in `folder` holding `events` (after the
    file-version event every writer starts with), renamed to `name` if given.
    An event given as bytes is written as those bytes."""
    os.makedirs(folder, exist_ok=True)
    scratch = os.path.join(str(folder), ".scratch")
    writer = EventFileWriter(scratch)
    writer.flush()
    (written,) = os.listdir(scratch)
    writer.close()
    with open(os.path.join(scratch, written), "ab") as f:
        records = RecordWriter(f)
        for event in events:
            records.write(event if isinstance(event, bytes) else event.SerializeToString())
    path = os.path.join(str(folder), name or written)
    shutil.move(os.path.join(scratch, written), path)
    os.rmdir(scratch)
    return path


def record_bounds(path):
    """(start, end) of each record of a file, from its headers."""
    data = open(path, "rb").read()
    bounds, offset = [], 0
    while offset < len(data):
        (length,) = struct.unpack_from("<Q", data, offset)
        bounds.append((offset, offset + 12 + length + 4))
        offset += 12 + length + 4
    return bounds


def loader_records(path, prefix="weight_health/"):
    """(step, wall time, tag) of each weight_health value, as TensorBoard's loader reads them."""
    return [
        (e.step, e.wall_time, v.tag)
        for e in event_file_loader.EventFileLoader(path).Load()
        for v in e.summary.value
        if v.tag.startswith(prefix)
    ]


def indexed(index, tags=None):
    """(step, wall time, tag) of everything indexed, in file and offset order."""
    rows = []
    for tag in tags or index.tags():
        r = index.logged(tag)
        rows += zip(r.file_ids.tolist(), r.offsets.tolist(), r.steps.tolist(), r.wall_times.tolist(), [tag] * len(r))
    return [row[2:] for row in sorted(rows)]


def decoded(records):
    return [norm_tables.decoded_values(tensor_util.make_ndarray(r.value.tensor), SHAPE) for r in records]


class CountingOpener:
    """Opens files as the index does, counting what is read and from where."""

    def __init__(self):
        self.opened = 0
        self.reads = []  # (path, position, bytes)

    def __call__(self, path):
        self.opened += 1
        return _Counted(event_index._open_binary(path), path, self.reads)

    def bytes_read(self):
        return sum(n for _, _, n in self.reads)


class _Counted:
    def __init__(self, stream, path, reads):
        self.stream, self.path, self.reads, self.position = stream, path, reads, 0

    def seek(self, position):
        self.position = position
        return self.stream.seek(position)

    def read(self, n):
        data = self.stream.read(n)
        self.reads.append((self.path, self.position, len(data)))
        self.position += len(data)
        return data

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.stream.close()


def test_every_weight_health_record_is_indexed_as_the_loader_reads_it(tmp_path):
    hist_tag = metadata.HISTOGRAM_TAG_PREFIX + "abc/32"
    events = [table_event(0, first=True)]
    for step in range(1, 20):
        events += [scalar_event(step), table_event(step), table_event(step, tag=hist_tag)]
    events.append(event_pb2.Event(wall_time=1.8e9, step=-3, summary=table_event(0).summary))  # a negative step
    events.append(event_pb2.Event(wall_time=1.8e9, step=4, graph_def=b"\x0a" * 1000))  # not a summary
    path = write_events(tmp_path, events)

    index = event_index.RunIndex(str(tmp_path))
    assert index.refresh() == 1 + 19 * 2 + 1
    assert index.tags() == sorted([TAG, hist_tag])
    assert indexed(index) == loader_records(path)
    assert index.logged(TAG).steps[-1] == -3
    assert index.logged(TAG).tag == TAG
    assert index.files() == [path]
    assert index.refresh() == 0


def test_what_tf_summary_writes_with_log_is_indexed_as_the_loader_reads_it(tmp_path):
    import keras
    import tensorflow as tf

    import tb_weightnorm

    model = keras.Sequential([keras.Input((5,)), keras.layers.Dense(4, name="hidden"), keras.layers.Dense(1, name="out")])
    writer = tf.summary.create_file_writer(str(tmp_path))
    with writer.as_default():
        for step in range(6):
            tb_weightnorm.log(model, step=step, keep_initial_weights=False)
            tf.summary.scalar("loss", 1.0 / (step + 1), step=step)
    writer.close()
    (path,) = tmp_path.glob("events.out.tfevents.*")

    index = event_index.RunIndex(str(tmp_path))
    index.refresh()
    assert indexed(index) == loader_records(str(path))
    (tag,) = index.tags()
    names = metadata.norm_table_names(index.first_metadata(tag).plugin_data.content)
    assert names.variables == tuple(v.path for v in model.trainable_variables)
    tables = [tensor_util.make_ndarray(r.value.tensor) for r in index.read(index.records(tag))]
    loaded = [tensor_util.make_ndarray(v.tensor) for _, v in _loaded_values(str(path), tag)]
    assert len(tables) == 6 and all(np.array_equal(a, b) for a, b in zip(tables, loaded))


def _loaded_values(path, tag):
    return [(e.step, v) for e in event_file_loader.EventFileLoader(path).Load() for v in e.summary.value if v.tag == tag]


def test_read_gives_the_written_tables_and_the_first_metadata_names_them(tmp_path):
    write_events(tmp_path, [table_event(s, first=s == 0) for s in range(10)])
    index = event_index.RunIndex(str(tmp_path))
    index.refresh()
    records = index.read(index.in_range(TAG, 2, 5))
    assert [r.step for r in records] == [2, 3, 4, 5]
    assert [r.wall_time for r in records] == [1.7e9 + s * 0.5 for s in (2, 3, 4, 5)]
    assert all(r.value.tag == TAG for r in records)
    for step, values in zip((2, 3, 4, 5), decoded(records)):
        np.testing.assert_array_equal(values, table(step))
    # In the order asked, whatever the order in the file.
    assert [r.step for r in index.read(index.records(TAG).take([7, 1, 4]))] == [7, 1, 4]
    first = index.first_metadata(TAG)
    assert metadata.norm_table_names(first.plugin_data.content) == NAMES
    assert index.first_metadata(TAG) is first  # kept, not read again
    assert index.first_metadata("weight_health/unknown") is None


def test_prefixes_that_do_not_tell_fall_back_to_parsing_the_whole_record(tmp_path):
    long_tag = "weight_health/" + "x" * 400
    event = table_event(7, tag=long_tag, first=True)
    assert event_prefix.peek(event.SerializeToString()[: event_index.PREFIX_BYTES], complete=False) is None
    assert event_prefix.peek(table_event(7).SerializeToString()[:256], complete=False) == (1.7e9 + 3.5, 7, (TAG,))
    # Protobuf does not promise field order: here the summary (a large one)
    # comes before the step and wall time, which the prefix then misses.
    summary_first = (
        event_pb2.Event(summary=table_event(11, first=True).summary).SerializeToString()
        + event_pb2.Event(wall_time=1.7e9 + 5.5, step=11).SerializeToString()
    )
    assert event_prefix.peek(summary_first[:256], complete=False) is None
    assert event_pb2.Event.FromString(summary_first).step == 11
    # proto3 leaves a step of 0 out: a prefix cannot tell it from a step written later.
    step_zero = table_event(0).SerializeToString()
    assert event_prefix.peek(step_zero[:256], complete=False) is None
    assert event_prefix.peek(step_zero, complete=True) == (1.7e9, 0, (TAG,))
    assert event_prefix.peek(scalar_event(0).SerializeToString(), complete=True) == (1.7e9, 0, ("loss",))

    path = write_events(
        tmp_path,
        [event, scalar_event(8, tag="loss/" + "y" * 400), table_event(9, tag=long_tag), summary_first, step_zero],
    )
    index = event_index.RunIndex(str(tmp_path))
    assert index.refresh() == 4
    assert index.tags() == sorted([long_tag, TAG])
    assert indexed(index) == loader_records(path)
    assert [r.step for r in index.read(index.logged(long_tag))] == [7, 9]
    assert index.logged(TAG).steps.tolist() == [11, 0]


def test_an_event_with_several_values_is_indexed_under_each_of_its_tags(tmp_path):
    other = metadata.HISTOGRAM_TAG_PREFIX + "abc/32"
    merged = event_pb2.Event(
        wall_time=1.7e9,
        step=3,
        summary=summary_pb2.Summary(value=[scalar_value(), table_value(3, first=True), table_value(3, tag=other, salt=7)]),
    )
    assert event_prefix.peek(merged.SerializeToString()[:256], complete=False) is None
    path = write_events(tmp_path, [merged, table_event(4)])
    index = event_index.RunIndex(str(tmp_path))
    assert index.refresh() == 3
    assert sorted(indexed(index)) == sorted(loader_records(path))
    (from_other,) = index.read(index.records(other))
    assert from_other.value.tag == other and from_other.step == 3
    np.testing.assert_array_equal(decoded([from_other])[0], table(3, 7))
    assert [r.value.tag for r in index.read(index.records(TAG))] == [TAG, TAG]


def test_refresh_reads_only_what_was_appended_and_waits_for_a_half_written_record(tmp_path):
    source = write_events(tmp_path / "written", [table_event(s, first=s == 1) for s in range(1, 11)])
    data = open(source, "rb").read()
    bounds = record_bounds(source)  # record 0 is the file version
    run = tmp_path / "run"
    run.mkdir()
    target = run / os.path.basename(source)
    opener = CountingOpener()
    target.touch()
    index = event_index.RunIndex(str(run), opener=opener)

    cuts = [
        bounds[4][1],  # 4 tables
        bounds[6][0] + 5,  # 1 more, then a header cut off
        bounds[6][0] + 40,  # the header whole, the data cut off
        bounds[8][1] - 1,  # 2 more, the third without its last footer byte
        len(data),
    ]
    added = []
    scanned_to = 0  # where the first record not yet indexed starts
    for cut in cuts:
        with open(target, "ab") as f:  # as a writer appends
            f.write(data[os.path.getsize(target) : cut])
        opener.reads.clear()
        added.append(index.refresh())
        assert min(position for _, position, _ in opener.reads) >= scanned_to  # nothing indexed is read again
        assert opener.bytes_read() <= cut - scanned_to
        scanned_to = max(end for _, end in bounds if end <= cut)
        opened = opener.opened
        assert index.refresh() == 0
        assert opener.opened == opened  # an unchanged file is not opened
    assert added == [4, 1, 0, 2, 3]
    assert indexed(index) == loader_records(source)
    for step, values in zip(range(1, 11), decoded(index.read(index.records(TAG)))):
        np.testing.assert_array_equal(values, table(step))


def test_a_new_file_is_picked_up(tmp_path):
    index = event_index.RunIndex(str(tmp_path / "run"))
    assert index.refresh() == 0  # a missing folder
    write_events(tmp_path / "run", [table_event(s, first=s == 0) for s in range(3)], name="events.out.tfevents.1.a")
    assert index.refresh() == 3
    write_events(tmp_path / "run", [table_event(s) for s in range(3, 5)], name="events.out.tfevents.2.a")
    assert index.refresh() == 2
    assert index.steps(TAG).tolist() == [0, 1, 2, 3, 4]
    assert index.steps(TAG).dtype == np.int64


def test_a_corrupt_length_checksum_stops_the_file_there_with_one_warning(tmp_path, caplog):
    path = write_events(tmp_path, [table_event(s, first=s == 0) for s in range(6)])
    start, _ = record_bounds(path)[4]  # the table of step 3
    data = bytearray(open(path, "rb").read())
    data[start] ^= 0x01
    open(path, "wb").write(bytes(data))
    index = event_index.RunIndex(str(tmp_path))
    with caplog.at_level(logging.WARNING):
        assert index.refresh() == 3
        with open(path, "ab") as f:
            f.write(b"more bytes")
        assert index.refresh() == 0
    assert index.steps(TAG).tolist() == [0, 1, 2]
    warnings = [r.getMessage() for r in caplog.records if "length checksum" in r.getMessage()]
    assert len(warnings) == 1
    assert f"offset {start} of {path}" in warnings[0]
    assert f"head -c {start}" in warnings[0]


def test_a_corrupt_data_checksum_skips_the_record_when_read_with_one_warning(tmp_path, caplog):
    path = write_events(tmp_path, [table_event(s, first=s == 0) for s in range(6)])
    _, end = record_bounds(path)[3]  # the table of step 2
    data = bytearray(open(path, "rb").read())
    data[end - 10] ^= 0x01  # in the table's bytes, past the prefix the index reads
    open(path, "wb").write(bytes(data))
    index = event_index.RunIndex(str(tmp_path))
    assert index.refresh() == 6  # indexing reads no data checksum
    with caplog.at_level(logging.WARNING):
        assert [r.step for r in index.read(index.records(TAG))] == [0, 1, 3, 4, 5]
        assert [r.step for r in index.read(index.in_range(TAG, 1, 3))] == [1, 3]
    warnings = [r.getMessage() for r in caplog.records if "data checksum" in r.getMessage()]
    assert len(warnings) == 1
    assert f"offset {end - 16 - index.records(TAG).lengths[2]} of {path}" in warnings[0]


def _resumed_run(folder):
    """A first writer logged steps 0..9; the run was resumed from a
    checkpoint at step 5 by a second writer, which logged 5..7 (7 twice)."""
    first = write_events(folder, [table_event(s, first=s == 0) for s in range(10)], name="events.out.tfevents.100.h")
    second = write_events(folder, [table_event(s, first=s == 5, salt=100) for s in (5, 6, 7, 7)], name="events.out.tfevents.200.h")
    return first, second


def test_files_in_name_order_a_subfolder_ignored_and_a_resumed_run_shown_as_tensorboard_shows_it(tmp_path):
    first = write_events(tmp_path, [table_event(s, first=s == 0) for s in range(10)], name="events.out.tfevents.100.h")
    index = event_index.RunIndex(str(tmp_path))
    index.refresh()
    assert index.steps(TAG).tolist() == list(range(10))
    second = write_events(tmp_path, [table_event(s, first=s == 5, salt=100) for s in (5, 6, 7, 7)], name="events.out.tfevents.200.h")
    # A file whose name sorts first, found last: reading order is by name.
    early = write_events(tmp_path, [table_event(3, salt=50), scalar_event(1)], name="events.out.tfevents.050.h")
    write_events(tmp_path / "eval", [table_event(s, first=True) for s in range(3)])
    (tmp_path / "folder.tfevents.dir").mkdir()
    assert index.refresh() == 5
    assert index.files() == [first, early, second]

    records = index.records(TAG)
    assert records.steps.tolist() == [0, 1, 2, 3, 4, 5, 6, 7]  # 8 and 9 were recomputed after the restart
    files = [index.files()[i] for i in records.file_ids]
    assert files == [first] * 5 + [second] * 3
    salts = [v[0, 0] - s for v, s in zip(decoded(index.read(records)), records.steps)]
    assert salts == [0] * 5 + [100] * 3  # early's step 3 is read before first's, so first's counts
    assert records.offsets[-1] == record_bounds(second)[-1][0]  # step 7's later record
    assert len(index.logged(TAG)) == 15
    assert index.in_range(TAG, 4, 9).steps.tolist() == [4, 5, 6, 7]
    assert index.in_range(TAG, 20, 30).steps.tolist() == []
    assert index.in_range(TAG, None, 1).steps.tolist() == [0, 1]
    assert index.in_range(TAG, 6).steps.tolist() == [6, 7]
    # The first record in reading order names the rows (early's has no names).
    assert index.first_metadata(TAG).plugin_data.content == table_event(3).summary.value[0].metadata.plugin_data.content


def test_a_resumed_run_is_shown_as_the_rust_data_server_shows_it(tmp_path):
    from tensorboard import context
    from tensorboard.data import server_ingester
    from tensorboard.util import grpc_util

    _resumed_run(tmp_path / "run")
    index = event_index.RunIndex(str(tmp_path / "run"))
    index.refresh()
    server = server_ingester.SubprocessServerDataIngester(
        server_ingester.get_server_binary(),
        str(tmp_path),
        reload_interval=0.2,
        channel_creds_type=grpc_util.ChannelCredsType.LOCAL,
        samples_per_plugin={metadata.PLUGIN_NAME: 0},
    )
    server.start()
    try:
        deadline = time.time() + 60
        while True:
            served = server.data_provider.read_tensors(
                context.RequestContext(), experiment_id="", plugin_name=metadata.PLUGIN_NAME, downsample=1000
            )
            if served.get("run") or time.time() > deadline:
                break
            time.sleep(0.2)
        data = served["run"][TAG]
        assert [d.step for d in data] == index.steps(TAG).tolist()
        read = index.read(index.records(TAG))
        assert [d.wall_time for d in data] == [r.wall_time for r in read]
        for d, r in zip(data, read):
            np.testing.assert_array_equal(d.numpy, tensor_util.make_ndarray(r.value.tensor))
    finally:
        server._stdin_handle.close()  # the server's --die-after-stdin


def test_100000_records_cost_a_few_megabytes(tmp_path):
    events = [table_event(0, first=True)] + [scalar_event(s, tag=TAG) for s in range(1, 100_000)]
    write_events(tmp_path, events)
    index = event_index.RunIndex(str(tmp_path))
    assert index.refresh() == 100_000
    records = index.records(TAG)
    assert records.nbytes <= 100_000 * 40
    assert sum(a.base.nbytes for a in records.arrays()) <= 2 * 100_000 * 40  # the arrays' spare capacity
    assert index.records(TAG).steps.base is records.steps.base  # a view, not a copy a request
    assert index.steps(TAG).tolist() == list(range(100_000))
    assert index.in_range(TAG, 500, 509).steps.tolist() == list(range(500, 510))
    with pytest.raises(ValueError):
        records.steps[0] = 1  # views of the index are read-only


def test_queries_on_other_threads_during_refreshes(tmp_path):
    source = write_events(tmp_path / "written", [table_event(s, first=s == 0) for s in range(200)])
    data = open(source, "rb").read()
    bounds = record_bounds(source)
    run = tmp_path / "run"
    run.mkdir()
    index = event_index.RunIndex(str(run))
    errors, done = [], threading.Event()

    def query():
        try:
            while not done.is_set():
                for tag in index.tags():
                    window = index.in_range(tag, 10, 20)
                    assert [r.step for r in index.read(window)] == window.steps.tolist()
        except Exception as exc:  # reported below
            errors.append(exc)

    threads = [threading.Thread(target=query) for _ in range(3)] + [threading.Thread(target=index.refresh)]
    for t in threads:
        t.start()
    written = 0
    for end in [end for _, end in bounds[::20]] + [len(data)]:
        with open(run / "events.out.tfevents.1", "ab") as f:
            f.write(data[written:end])
        written = end
        index.refresh()
    done.set()
    for t in threads:
        t.join()
    assert not errors
    assert index.steps(TAG).tolist() == list(range(200))
    assert len(index) == 200


@pytest.mark.parametrize("size", [0, 1, 4095, 4096, 4097, 65536, 100_003])
def test_the_fast_checksum_equals_tensorboards(size):
    data = np.random.default_rng(size).integers(0, 256, size, dtype=np.uint8).tobytes()
    assert event_files.masked_crc32c(data) == tb_masked_crc32c(data)
