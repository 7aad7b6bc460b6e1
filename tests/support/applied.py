"""Shared checks for tests that train real models with WeightHealthCallback."""

import numpy as np

from support.events import read_events
from tb_weightnorm import schema
from tb_weightnorm.wire import metadata


def norm_tables(run_dir):
    """(names, [(step, table)]) of a run's norm tables, merged over tags in file order."""
    events = [e for e in read_events(str(run_dir)) if e[2].startswith(metadata.NORM_TABLE_TAG_PREFIX)]
    assert events, f"no norm tables in {run_dir}"
    names = metadata.norm_table_names(events[0][3].plugin_data.content)
    return names, [(e[0], e[4]) for e in events]


def assert_update_is_lr_times_gradient(run_dir, lr, *, rtol=1e-4, min_rows=1):
    """With plain SGD, update l2 == lr x gradient l2 for every row that got a
    gradient, at every logged step: the logged gradient is the applied one."""
    names, tables = norm_tables(run_dir)
    g, u, w = (names.stats.index(s) for s in ("gradient/l2", "update/l2", "weight/l2"))
    checked = 0
    for step, table in tables:
        rows = table[:-1] if names.variables[-1] == schema.GLOBAL_ROW else table
        measured = ~np.isnan(rows[:, g])
        assert measured.sum() >= min_rows, f"step {step}: only {measured.sum()} rows have a gradient"
        # W_after - W_before is taken in float32: it carries a rounding of a
        # few ulps of the weights themselves, whatever the update's size.
        rounding = 8 * np.finfo(np.float32).eps * rows[measured, w]
        error = np.abs(rows[measured, u] - lr * rows[measured, g])
        bound = rtol * lr * rows[measured, g] + rounding
        assert (error <= bound).all(), (
            f"step {step}: update l2 != lr x gradient l2 for rows "
            f"{[names.variables[i] for i in np.flatnonzero(measured)[error > bound]]}"
        )
        checked += measured.sum()
    return names, tables, checked
