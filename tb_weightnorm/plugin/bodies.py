"""Shapes the plugin's JSON responses (see http_api.md): the objects each
route answers, numbers rounded, and NaN and infinities spelt the way JSON can
carry. What the values are (a long run thinned into columns, the non-finite
counts of a heatmap) is computed in `read/charts.py`.

No TensorFlow, no TensorBoard, no HTTP. Values are encoded a whole array at
a time, so a response for a long run costs a few array operations rather than
a Python loop per value.
"""

from __future__ import annotations

import os
import urllib.parse
from typing import TYPE_CHECKING, Any, Dict, List, Mapping, Optional, Sequence, Tuple

import numpy as np

from tb_weightnorm import diagnosis, schema, snapshots
from tb_weightnorm.read import json_numbers
from tb_weightnorm.read.charts import Thinned
from tb_weightnorm.read.history import NormHistory
from tb_weightnorm.snapshots import distance

if TYPE_CHECKING:  # they read through TensorBoard; these bodies need only their fields
    from tb_weightnorm.read.histogram_tables import HistogramNames, VariableHistograms
    from tb_weightnorm.read.kernel_grids import KernelGridHistory, KernelGridInfo

# Significant digits of the values of heatmaps and comparisons: a colour or a
# line cannot show more, and they halve the size of a response.
DIGITS = 4
# Histogram edges keep float32's precision (they place the buckets).
EDGE_DIGITS = 7

# One spelling of NaN and infinities for the plugin and the command-line report.
json_number = json_numbers.json_number
finding_object = json_numbers.finding_object

# One spelling of NaN and infinities for the plugin and the command-line report.
json_number = json_numbers.json_number
finding_object = json_numbers.finding_object


def round_significant(values: np.ndarray, digits: int) -> np.ndarray:
    """`values` (float64) rounded to `digits` significant digits.

    The scale is an exact power of ten whenever it can be (10**k for |k| <=
    22), and the result is produced by one division or multiplication of that
    exact scale, so it is the float nearest the rounded decimal and JSON
    writes it with no more than `digits` digits (0.1234, not
    0.12340000000000001). NaN, ±inf and 0 pass through.
    """
    x = np.array(values, dtype=np.float64)
    rounded = np.isfinite(x) & (x != 0)
    if not rounded.any():
        return x
    v = x[rounded]
    exponent = np.floor(np.log10(np.abs(v))).astype(np.int64)
    shift = digits - 1 - exponent  # decimal places kept; negative: tens dropped
    scale = 10.0 ** np.abs(shift).astype(np.float64)
    x[rounded] = np.where(shift >= 0, np.round(v * scale) / scale, np.round(v / scale) * scale)
    return x


def json_values(values: np.ndarray, digits: Optional[int] = None) -> List[Any]:
    """An array of any shape as (nested) JSON lists, NaN as null and ±inf as
    "Infinity"/"-Infinity"; rounded to `digits` significant digits if given."""
    x = np.asarray(values, dtype=np.float64)
    if digits is not None:
        x = round_significant(x, digits)
    out = x.astype(object)
    out[np.isnan(x)] = None
    out[x == np.inf] = json_numbers.POSITIVE_INFINITY
    out[x == -np.inf] = json_numbers.NEGATIVE_INFINITY
    return out.tolist()


def json_counts(values: np.ndarray) -> List[Any]:
    """Counts stored as floats, as JSON integers (null where not a number)."""
    x = np.asarray(values, dtype=np.float64)
    finite = np.isfinite(x)
    out = np.rint(np.where(finite, x, 0)).astype(np.int64).astype(object)
    out[~finite] = None
    return out.tolist()


# -- the objects of the routes' bodies -------------------------------------------


def thinned_fields(thinned: Thinned, *, wall_times: bool = True) -> Dict[str, Any]:
    """The fields of a thinned response saying which logged steps each column
    stands for (see "Long runs" in http_api.md).

    Args:
        thinned: from `charts.thin`.
        wall_times: whether to say each column's wall time.
    """
    fields: Dict[str, Any] = {
        "logged_steps": thinned.logged_steps,
        "reduce": thinned.reduce,
        "steps": thinned.steps.tolist(),
        "first_steps": thinned.first_steps.tolist(),
    }
    if wall_times:
        fields["wall_times"] = json_values(thinned.wall_times)
    return fields


def series_objects(
    history: NormHistory,
    rows: Sequence[int],
    values: np.ndarray,
    digits: Optional[int],
    *,
    flag_global: bool = False,
) -> List[Dict[str, Any]]:
    """One {layer, variable, values} per row of `history`.

    Args:
        history: the run.
        rows: indices into `history.variables`.
        values: [columns, len(rows)].
        digits: significant digits kept, all when None.
        flag_global: whether each also says if it is the whole-model row.
    """
    encoded = json_values(values.T, digits)
    out = []
    for i, v in zip(rows, encoded):
        entry: Dict[str, Any] = {"layer": history.layers[i], "variable": history.variables[i]}
        if flag_global:
            entry["global"] = history.variables[i] == schema.GLOBAL_ROW
        entry["values"] = v
        out.append(entry)
    return out


def with_nonfinite(rows: List[Dict[str, Any]], counts: Optional[np.ndarray]) -> List[Dict[str, Any]]:
    """Adds `nonfinite` (counts per column) to the rows that have any.

    Args:
        rows: a heatmap's rows.
        counts: [columns, len(rows)], or None when there are none.
    """
    if counts is None:
        return rows
    for row, row_counts in zip(rows, counts.T):
        if np.any(row_counts > 0):
            row["nonfinite"] = [int(c) for c in row_counts]
    return rows


def heatmap_body(
    run: str, stat: str, by: str, max_steps: int, thinned: Thinned, rows: List[Dict[str, Any]]
) -> Dict[str, Any]:
    """The body of `heatmap` (its rows already encoded).

    Args:
        run, stat, by, max_steps: as asked (`max_steps` after the cap).
        thinned: the heatmap's values, thinned.
        rows: the encoded rows of `thinned.values`.
    """
    fields = thinned_fields(thinned, wall_times=False)
    return {"run": run, "stat": stat, "by": by, "max_steps": max_steps, **fields, "rows": rows}


def table_body(history: NormHistory, index: int) -> Dict[str, Any]:
    """The body of `table`: every stat of every variable at one logged step.

    Args:
        history: the run.
        index: the logged step's index into `history.steps`.
    """
    rows = json_values(history.values[index])
    return {
        "run": history.run,
        "step": int(history.steps[index]),
        "wall_time": json_number(history.wall_times[index]),
        "steps": history.steps.tolist(),
        "stats": list(history.stats),
        "rows": [
            {"layer": layer, "variable": variable, "values": values}
            for variable, layer, values in zip(history.variables, history.layers, rows)
        ],
    }


def run_object(
    run: str,
    tables: Sequence[schema.NormTableNames],
    last_step: int,
    histograms: Sequence["HistogramNames"],
    histograms_last_step: Optional[int],
    kernel_grids: Mapping[str, Tuple["KernelGridInfo", int]],
) -> Dict[str, Any]:
    """What a run holds (an entry of `runs`), from its metadata alone.

    Args:
        run: the run.
        tables: the names of each of its norm table series.
        last_step: the last step of any of them.
        histograms: the names of each of its histogram series.
        histograms_last_step: the last step of any of them.
        kernel_grids: {variable: (its kernel grid, its last step)}.
    """
    variables = {v: l for names in tables for v, l in zip(names.variables, names.layers)}
    stats = {s: None for names in tables for s in names.stats}
    notes = sorted({names.gradient_note for names in tables if names.gradient_note})
    return {
        "run": run,
        "last_step": last_step,
        "variables": sum(v != schema.GLOBAL_ROW for v in variables),
        "global_row": schema.GLOBAL_ROW in variables,
        "layers": list(dict.fromkeys(l for v, l in variables.items() if v != schema.GLOBAL_ROW)),
        "stats": list(stats),
        "gradient_note": "; ".join(notes),
        "histograms": {
            "kinds": list(dict.fromkeys(k for n in histograms for k in n.kinds)),
            "bins": sorted({n.bins for n in histograms}),
            "variables": len({v for n in histograms for v in n.variables}),
            "last_step": histograms_last_step,
        }
        if histograms
        else None,
        "kernel_grids": [
            {
                "layer": info.layer,
                "variable": variable,
                "mode": info.mode,
                "filters_total": info.filters_total,
                "last_step": grid_last_step,
            }
            for variable, (info, grid_last_step) in kernel_grids.items()
        ],
    }


def compared_run_object(
    history: NormHistory,
    stat: str,
    variables: Sequence[str],
    layers: Sequence[str],
    thinned: Thinned,
    rows: Sequence[int],
) -> Dict[str, Any]:
    """A run of a `compare` body: the asked variables and layers it lacks,
    and the series of those it has.

    Args:
        history: the run.
        stat: the compared stat.
        variables, layers: as asked.
        thinned: the values of `rows`, thinned.
        rows: the rows compared (indices into `history.variables`).
    """
    known = set(history.variables)
    return {
        "run": history.run,
        "stat_logged": stat in history.stats,
        "missing": [v for v in variables if v not in known],
        "missing_layers": [l for l in layers if l not in history.layers],
        **thinned_fields(thinned),
        "series": series_objects(history, rows, thinned.values, DIGITS),
    }


def histogram_object(found: "VariableHistograms", i: int) -> Dict[str, Any]:
    """The `i`-th logged histogram of a variable.

    Args:
        found: a variable's histograms.
        i: an index into `found.steps`.
    """
    row = found.rows[i]
    low, high = json_values(row[:2], EDGE_DIGITS)
    nan, neg_inf, pos_inf = json_counts(row[-3:])
    return {
        "step": int(found.steps[i]),
        "wall_time": json_number(found.wall_times[i]),
        "min": low,
        "max": high,
        "counts": json_counts(row[2:-3]),
        "nan_count": nan,
        "neg_inf_count": neg_inf,
        "pos_inf_count": pos_inf,
    }


def histogram_run_object(run: str, found: "VariableHistograms", picked: Sequence[int]) -> Dict[str, Any]:
    """A run of a `histograms` body.

    Args:
        run: the run.
        found: the variable's histograms in that run.
        picked: the indices of those shown, into `found.steps`.
    """
    return {
        "run": run,
        "layer": found.layer,
        "logged_steps": len(found.steps),
        "histograms": [histogram_object(found, i) for i in picked],
    }


def kernel_grids_body(run: str, variable: str, grids: "KernelGridHistory") -> Dict[str, Any]:
    """The body of `kernel_grids`: each logged image, with the URL of its PNG.

    Args:
        run, variable: as asked.
        grids: the variable's kernel grids.
    """
    info = grids.info
    return {
        "run": run,
        "variable": variable,
        "layer": info.layer,
        "mode": info.mode,
        "filters_total": info.filters_total,
        "images": [
            {
                "step": image.step,
                "wall_time": json_number(image.wall_time),
                "width": image.width,
                "height": image.height,
                "scale": None if image.scale is None else json_values([image.scale], DIGITS)[0],
                "filters_shown": image.filters_shown,
                "url": "kernel_image?"
                + urllib.parse.urlencode({"run": run, "variable": variable, "step": image.step}),
            }
            for image in grids.images
        ],
    }


def findings_body(
    runs: List[str], findings: List[Dict[str, Any]], skipped: List[Dict[str, str]]
) -> Dict[str, Any]:
    """The body of `findings`: the most severe first, then by first step, run and rule.

    Args:
        runs: the runs diagnosed.
        findings: their findings, from `finding_object`.
        skipped: {run, reason} of each run not diagnosed.
    """
    findings = sorted(
        findings, key=lambda f: (-diagnosis.severity_rank(f["severity"]), f["first_step"], f["run"], f["rule"])
    )
    return {"runs": runs, "findings": findings, "skipped": skipped}


def snapshot_object(snapshot: snapshots.Snapshot) -> Dict[str, Any]:
    """Which epoch and step a weight snapshot is of, and when it was taken.

    Args:
        snapshot: a weight snapshot.
    """
    return {"epoch": snapshot.epoch, "step": snapshot.step, "wall_time": snapshot.wall_time}


def snapshots_body(run: str, found: snapshots.Snapshots) -> Dict[str, Any]:
    """The body of `snapshots`: the readable ones, and the files skipped.

    Args:
        run: the run.
        found: its weight snapshots.
    """
    return {
        "run": run,
        "snapshots": [
            {**snapshot_object(found[epoch]), "variables": len(found[epoch].variables)} for epoch in found.epochs
        ],
        # Named by file: the server's folders are none of the client's business.
        "skipped": [
            {"file": os.path.basename(path), "reason": reason.replace(path, os.path.basename(path))}
            for path, reason in found.unreadable
        ],
    }


def distance_object(d: distance.Distance) -> Dict[str, Any]:
    """How far weights moved between two snapshots.

    Args:
        d: the distance of a variable, a layer or the whole model.
    """
    return {
        "distance": json_number(d.distance),
        "relative": json_number(d.relative),
        "norm_from": json_number(d.norm_from),
        "norm_to": json_number(d.norm_to),
        "nonfinite": d.nonfinite,
    }


def snapshot_distance_body(
    run: str, a: snapshots.Snapshot, b: snapshots.Snapshot, comparison: distance.Comparison
) -> Dict[str, Any]:
    """The body of `snapshot_distance`: from snapshot `a` to `b`, in all, by
    layer and by variable.

    Args:
        run: the run.
        a, b: the snapshots compared.
        comparison: `distance.compare` of their weights.
    """
    return {
        "run": run,
        "from": snapshot_object(a),
        "to": snapshot_object(b),
        "total": distance_object(distance.total(comparison)),
        "layers": [
            {
                "layer": layer.name,
                **distance_object(layer),
                "variables": [
                    {"variable": v.name, "shape": list(a.info(v.name).shape), **distance_object(v)}
                    for v in variables
                ],
            }
            for layer, variables in comparison.layers
        ],
        "unmatched": [{"variable": name, "reason": reason} for name, reason in comparison.unmatched],
    }
