"""The plugin's index of a run's event files, on real event files."""

import logging
import os
import shutil
import struct
import threading

import numpy as np
import pytest
from tensorboard.backend.event_processing import event_file_loader
from tensorboard.compat.proto import event_pb2, summary_pb2
from tensorboard.compat.tensorflow_stub.pywrap_tensorflow import masked_crc32c as tb_masked_crc32c
from tensorboard.summary.writer.event_file_writer import EventFileWriter
from tensorboard.util import tensor_util

from tb_weightnorm import schema
from tb_weightnorm.read import event_index, norm_tables
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


def table_event(step, *, first=False, salt=0.0, tag=TAG, wall_time=None):
    value = summary_pb2.Summary.Value(
        tag=tag,
        tensor=tensor_util.make_tensor_proto(table_codec.encode(table(step, salt))),
        metadata=metadata.norm_table_metadata(NAMES, include_names=first),
    )
    return event_pb2.Event(
        wall_time=1.7e9 + step * 0.5 if wall_time is None else wall_time,
        step=step,
        summary=summary_pb2.Summary(value=[value]),
    )


def scalar_event(step, tag="loss"):
    return event_pb2.Event(
        wall_time=1.7e9 + step, step=step, summary=summary_pb2.Summary(value=[summary_pb2.Summary.Value(tag=tag, simple_value=0.5)])
    )


def write_events(folder, events, name=None):
    """The path of a new event file in `folder` holding `events` (after the
    file-version event every writer starts with), renamed to `name` if given."""
    os.makedirs(folder, exist_ok=True)
    scratch = os.path.join(str(folder), ".scratch")
    writer = EventFileWriter(scratch)
    for event in events:
        writer.add_event(event)
    writer.close()
    (written,) = os.listdir(scratch)
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
    return [
        (e.step, e.wall_time, e.summary.value[0].tag)
        for e in event_file_loader.EventFileLoader(path).Load()
        if e.summary.value and e.summary.value[0].tag.startswith(prefix)
    ]


def indexed(index, tag=TAG):
    r = index.records(tag)
    return list(zip(r.steps.tolist(), r.wall_times.tolist(), [tag] * len(r)))


def decoded(records):
    return [norm_tables.decoded_values(tensor_util.make_ndarray(r.value.tensor), SHAPE) for r in records]


def test_every_weight_health_record_is_indexed_as_the_loader_reads_it(tmp_path):
    hist_tag = metadata.HISTOGRAM_TAG_PREFIX + "abc/32"
    events = [table_event(0, first=True)]
    for step in range(1, 20):
        events += [scalar_event(step), table_event(step), table_event(step, tag=hist_tag)]
    events.append(event_pb2.Event(wall_time=1.8e9, step=-3, summary=table_event(0).summary))  # a negative step
    path = write_events(tmp_path, events)

    index = event_index.RunIndex(str(tmp_path))
    assert index.refresh() == 20 + 19 + 1 - 0
    assert index.tags() == sorted([TAG, hist_tag])
    assert "loss" not in index.tags()
    expected = loader_records(path)
    got = sorted(indexed(index, TAG) + indexed(index, hist_tag), key=lambda r: (r[0], r[2]))
    assert got == sorted(expected, key=lambda r: (r[0], r[2]))
    assert index.records(TAG).steps[-1] == -3
    assert index.files() == [path]
    assert index.refresh() == 0


def test_read_gives_the_written_tables_and_the_first_metadata_names_them(tmp_path):
    write_events(tmp_path, [table_event(s, first=s == 0) for s in range(10)])
    index = event_index.RunIndex(str(tmp_path))
    index.refresh()
    records = index.read(index.in_range(TAG, 2, 5))
    assert [r.step for r in records] == [2, 3, 4, 5]
    assert [r.wall_time for r in records] == [1.7e9 + s * 0.5 for s in (2, 3, 4, 5)]
    for step, values in zip((2, 3, 4, 5), decoded(records)):
        np.testing.assert_array_equal(values, table(step))
    first = index.first_metadata(TAG)
    assert metadata.norm_table_names(first.plugin_data.content) == NAMES
    assert index.first_metadata(TAG) is first  # kept, not read again
    assert index.first_metadata("weight_health/unknown") is None


def test_a_prefix_without_the_tag_falls_back_to_parsing_the_whole_record(tmp_path):
    long_tag = "weight_health/" + "x" * 400
    other_long = "loss/" + "y" * 400
    event = table_event(7, tag=long_tag, first=True)
    prefix = event.SerializeToString()[: event_index.PREFIX_BYTES]
    assert event_index._peek(prefix, complete=False) is None
    assert event_index._peek(table_event(7).SerializeToString()[:256], complete=False) == (1.7e9 + 3.5, 7, TAG)
    path = write_events(tmp_path, [event, scalar_event(8, tag=other_long), table_event(9, tag=long_tag)])
    index = event_index.RunIndex(str(tmp_path))
    assert index.refresh() == 2
    assert index.tags() == [long_tag]
    assert indexed(index, long_tag) == loader_records(path)
    assert [r.step for r in index.read(index.records(long_tag))] == [7, 9]


def test_refresh_reads_only_what_was_appended_and_waits_for_a_half_written_record(tmp_path):
    source = write_events(tmp_path / "written", [table_event(s, first=s == 0) for s in range(10)])
    data = open(source, "rb").read()
    bounds = record_bounds(source)  # record 0 is the file version
    run = tmp_path / "run"
    run.mkdir()
    target = run / os.path.basename(source)
    index = event_index.RunIndex(str(run))

    cuts = [
        bounds[4][1],  # 4 tables
        bounds[6][0] + 5,  # 1 more, then a header cut off
        bounds[6][0] + 40,  # the header whole, the data cut off
        bounds[8][1] - 1,  # 2 more, the third without its last footer byte
        len(data),
    ]
    added = []
    for cut in cuts:
        with open(target, "wb") as f:  # rewriting the same leading bytes, as appending does
            f.write(data[:cut])
        added.append(index.refresh())
        assert index.refresh() == 0
    assert added == [4, 1, 0, 2, 3]
    assert indexed(index) == loader_records(source)
    for step, values in zip(range(10), decoded(index.read(index.records(TAG)))):
        np.testing.assert_array_equal(values, table(step))


def test_a_new_file_is_picked_up(tmp_path):
    index = event_index.RunIndex(str(tmp_path))
    assert index.refresh() == 0  # an empty (or missing) folder
    write_events(tmp_path, [table_event(s, first=s == 0) for s in range(3)], name="events.out.tfevents.1.a")
    assert index.refresh() == 3
    write_events(tmp_path, [table_event(s) for s in range(3, 5)], name="events.out.tfevents.2.a")
    assert index.refresh() == 2
    assert index.records(TAG).steps.tolist() == [0, 1, 2, 3, 4]


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
    assert index.records(TAG).steps.tolist() == [0, 1, 2]
    warnings = [r.getMessage() for r in caplog.records if "length checksum" in r.getMessage()]
    assert len(warnings) == 1
    assert f"offset {start} of {path}" in warnings[0]


def test_a_corrupt_data_checksum_skips_the_record_when_read_with_one_warning(tmp_path, caplog):
    path = write_events(tmp_path, [table_event(s, first=s == 0) for s in range(6)])
    _, end = record_bounds(path)[3]  # the table of step 2
    data = bytearray(open(path, "rb").read())
    data[end - 10] ^= 0x01  # in the table's bytes, past the prefix the index reads
    open(path, "wb").write(bytes(data))
    index = event_index.RunIndex(str(tmp_path))
    assert index.refresh() == 6
    with caplog.at_level(logging.WARNING):
        assert [r.step for r in index.read(index.records(TAG))] == [0, 1, 3, 4, 5]
        assert [r.step for r in index.read(index.in_range(TAG, 1, 3))] == [1, 3]
    warnings = [r.getMessage() for r in caplog.records if "data checksum" in r.getMessage()]
    assert len(warnings) == 1


def test_files_in_name_order_a_subfolder_ignored_and_a_relogged_step_is_the_later_record(tmp_path):
    # The first writer logged steps 0..9; the run was resumed from a checkpoint
    # at step 5 by a second writer, which logged 5..7 again before stopping.
    # A file whose name sorts first arrives last: order is by name, not arrival.
    first = write_events(tmp_path, [table_event(s, first=s == 0) for s in range(10)], name="events.out.tfevents.100.h")
    index = event_index.RunIndex(str(tmp_path))
    index.refresh()
    second = write_events(tmp_path, [table_event(s, first=s == 5, salt=100) for s in (5, 6, 7, 7)], name="events.out.tfevents.200.h")
    early = write_events(tmp_path, [scalar_event(1)], name="events.out.tfevents.050.h")
    write_events(tmp_path / "eval", [table_event(s, first=True) for s in range(3)])
    (tmp_path / "folder.tfevents.dir").mkdir()
    assert index.refresh() == 4
    assert sorted(index.files()) == sorted([first, second, early])

    unique = index.unique(TAG)
    assert unique.steps.tolist() == list(range(10))
    window = index.in_range(TAG, 4, 8)
    assert window.steps.tolist() == [4, 5, 6, 7, 8]
    files = [index.files()[i] for i in window.file_ids]
    assert files == [first, second, second, second, first]
    salts = [v[0, 0] - s for v, s in zip(decoded(index.read(window)), window.steps)]
    assert salts == [0, 100, 100, 100, 0]
    assert window.offsets[3] > window.offsets[2]  # step 7's second record, later in its file
    assert len(index.records(TAG)) == 14
    assert index.in_range(TAG, 20, 30).steps.tolist() == []
    assert index.in_range(TAG, None, 1).steps.tolist() == [0, 1]
    # The first record by name order names the rows, wherever it was found.
    assert metadata.norm_table_names(index.first_metadata(TAG).plugin_data.content) == NAMES


def test_100000_records_cost_a_few_megabytes(tmp_path):
    events = [table_event(0, first=True)] + [scalar_event(s, tag=TAG) for s in range(1, 100_000)]
    write_events(tmp_path, events)
    index = event_index.RunIndex(str(tmp_path))
    assert index.refresh() == 100_000
    records = index.records(TAG)
    assert sum(a.nbytes for a in records) <= 100_000 * 40
    assert sum(a.base.nbytes for a in records) <= 2 * 100_000 * 40  # the arrays' spare capacity
    unique = index.unique(TAG)
    assert unique.steps.tolist() == list(range(100_000))
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

    threads = [threading.Thread(target=query) for _ in range(3)]
    for t in threads:
        t.start()
    written = 0
    for end in [end for _, end in bounds[::20]] + [len(data)]:
        with open(run / "events.out.tfevents.1", "ab") as f:  # as a writer appends
            f.write(data[written:end])
        written = end
        index.refresh()
    done.set()
    for t in threads:
        t.join()
    assert not errors
    assert index.unique(TAG).steps.tolist() == list(range(200))


@pytest.mark.parametrize("size", [0, 1, 4095, 4096, 4097, 65536, 100_003])
def test_the_fast_checksum_equals_tensorboards(size):
    data = np.random.default_rng(size).integers(0, 256, size, dtype=np.uint8).tobytes()
    assert event_files.masked_crc32c(data) == tb_masked_crc32c(data)
