"""Reading what a run wrote: its event files' summaries decoded as the reader
decodes them, and the reference values the stats are checked against."""

import glob
import os

import numpy as np


def read_events(run_dir):
    """(step, wall_time, tag, metadata, ndarray) of every summary value, in file
    order, with the metadata of its time series (the first event's: later ones
    carry none) and the plugin's tables decoded and completed as the reader does."""
    from tensorboard.backend.event_processing import event_file_loader
    from tensorboard.util import tensor_util

    from tb_weightnorm.read import histogram_tables
    from tb_weightnorm.wire import metadata
    from tb_weightnorm.read import norm_tables

    names_of = {}
    out = []
    for path in sorted(glob.glob(os.path.join(run_dir, "events.out.tfevents.*"))):
        for event in event_file_loader.EventFileLoader(path).Load():
            for value in event.summary.value:
                array = tensor_util.make_ndarray(value.tensor)
                content = value.metadata.plugin_data.content
                first = names_of.setdefault(value.tag, value.metadata)
                content = first.plugin_data.content
                if value.tag.startswith(metadata.NORM_TABLE_TAG_PREFIX):
                    names = metadata.norm_table_names(content)
                    array = norm_tables.with_derived_columns(
                        names, norm_tables.decoded_values(array, (len(names.variables), len(names.stored_stats)))
                    )
                elif value.tag.startswith(metadata.HISTOGRAM_TAG_PREFIX):
                    names = histogram_tables.histogram_names(content)
                    array = norm_tables.decoded_values(array, names.shape)
                out.append((event.step, event.wall_time, value.tag, first, array))
    return out


def numpy_stats(x):
    """Reference values of schema.TENSOR_STATS, computed in float64 numpy."""
    x = np.asarray(x, dtype=np.float64).ravel()
    finite = x[np.isfinite(x)]
    nan = float("nan")
    return np.array(
        [
            np.abs(finite).sum(),
            np.sqrt((finite**2).sum()),
            np.abs(finite).max() if finite.size else 0.0,
            finite.mean() if finite.size else nan,
            finite.std() if finite.size else nan,
            finite.min() if finite.size else nan,
            finite.max() if finite.size else nan,
            np.isnan(x).sum(),
            np.isinf(x).sum(),
        ]
    )
