"""Logs one float32 variable of 100 million values (400 MB) with
`tb_weightnorm.log` in a tf.function, norm table and histograms, and prints
one JSON object:

- `peak_growth`: how far the peak resident memory rose above what the
  process held just before the logged step (`VmHWM`, reset through
  /proc/self/clear_refs, against `VmRSS`), in bytes;
- `to_host`: the static shape of every tensor the traced graph hands to the
  host: the inputs of its py_function / numpy_function ops and of its
  summary writes, in every branch and loop body;
- `stats`, `table`, `histogram`: the logged norm table (its stat names and
  its one row) and histograms.

The variable holds `column / 1000 - 0.5` (1,000 distinct values), with one
NaN and one +Inf: a test can compute every expected number from that.
"""

import json
import os
import sys

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import tensorflow as tf

import tb_weightnorm
from tb_weightnorm.read.norm_tables import decoded_values, with_derived_columns
from tb_weightnorm.wire import metadata

ROWS, COLUMNS = 100_000, 1_000
BINS = 32
HOST_OPS = {"PyFunc", "PyFuncStateless", "EagerPyFunc"}


def memory() -> dict:
    with open("/proc/self/status") as f:
        return {line.split(":")[0]: int(line.split()[1]) * 1024 for line in f if line.startswith(("VmHWM", "VmRSS"))}


def graphs(graph, seen):
    """The graph and every function graph it calls (cond branches, loop bodies)."""
    yield graph
    for op in graph.get_operations():
        names = []
        for attr in ("then_branch", "else_branch", "body", "cond", "f", "branches"):
            try:
                value = op.get_attr(attr)
            except (ValueError, TypeError):
                continue
            names += [fn.name for fn in (value if isinstance(value, list) else [value])]
        for name in names:
            if name not in seen:
                seen.add(name)
                yield from graphs(graph._get_function(name).graph, seen)


def main(log_dir: str) -> None:
    pattern = tf.broadcast_to(tf.range(COLUMNS, dtype=tf.float32) / COLUMNS - 0.5, [ROWS, COLUMNS])
    huge = tf.Variable(pattern, name="huge")
    del pattern
    huge.scatter_nd_update([[0, 0], [1, 1]], [float("nan"), float("inf")])
    writer = tf.summary.create_file_writer(log_dir)

    @tf.function
    def log(step):
        with writer.as_default():
            return tb_weightnorm.log([huge], step=step, histogram_every_n_steps=1, histogram_bins=BINS,
                                     keep_initial_weights=False)

    traced = log.get_concrete_function(tf.TensorSpec([], tf.int64))
    to_host = []
    for graph in graphs(traced.graph, set()):
        for op in graph.get_operations():
            if op.type in HOST_OPS or op.type.startswith("Write"):
                to_host += [t.shape.as_list() for t in op.inputs if t.dtype != tf.resource]
    with open("/proc/self/clear_refs", "w") as f:
        f.write("5")  # the peak resident memory starts again from now
    before = memory()["VmRSS"]
    log(tf.constant(1, tf.int64))
    peak_growth = memory()["VmHWM"] - before
    writer.close()

    from tensorboard.backend.event_processing import event_file_loader
    from tensorboard.util import tensor_util

    out = {"peak_growth": peak_growth, "to_host": to_host, "variable_bytes": ROWS * COLUMNS * 4}
    (path,) = [os.path.join(log_dir, f) for f in os.listdir(log_dir)]
    for event in event_file_loader.EventFileLoader(path).Load():
        for value in event.summary.value:
            array = tensor_util.make_ndarray(value.tensor)
            if value.tag.startswith(metadata.NORM_TABLE_TAG_PREFIX):
                names = metadata.norm_table_names(value.metadata.plugin_data.content)
                out["stats"] = list(names.stats)
                stored = decoded_values(array, (1, len(names.stored_stats)))
                out["table"] = with_derived_columns(names, stored).tolist()
            elif value.tag.startswith(metadata.HISTOGRAM_TAG_PREFIX):
                out["histogram"] = decoded_values(array, (2, 1, BINS + 5)).tolist()
    print(json.dumps(out))


if __name__ == "__main__":
    main(sys.argv[1])
