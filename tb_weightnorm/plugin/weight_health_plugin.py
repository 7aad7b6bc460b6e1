"""The TensorBoard plugin: the "Weight Health" tab's backend and its routes.

It reads only through `context.data_provider`, so it works under TensorBoard's
default (fast, Rust) loader and under `--load_fast=false`. Routes are
documented in http_api.md beside this file. This module is about HTTP:
parameters in, JSON out; reading is in the reader modules, array work in
`wire` and `layer_stats`, and decoded runs are kept in a `cache.SignedCache`.
"""

from __future__ import annotations

import functools
import gzip
import json
import logging
import os
import pathlib
import threading
import urllib.parse
from typing import Any, Callable, Dict, List, Mapping, Optional, Sequence, Tuple

import numpy as np
from tensorboard import errors, plugin_util
from tensorboard.backend import http_util
from tensorboard.plugins import base_plugin
from werkzeug import wrappers

from tb_weightnorm import diagnosis, schema, snapshots
from tb_weightnorm.plugin import bodies, cache, params
from tb_weightnorm.plugin.params import HttpError, not_found, quoted
from tb_weightnorm.read import histogram_tables, kernel_grids, layer_view, norm_tables
from tb_weightnorm.read.history import NormHistory
from tb_weightnorm.snapshots import distance
from tb_weightnorm.wire import metadata

logger = logging.getLogger(__name__)

_STATIC = pathlib.Path(__file__).resolve().parent / "static"

# Columns of a heatmap by default: about one per pixel of a wide chart.
HEATMAP_COLUMNS = 500
# Steps per run of a comparison by default.
COMPARE_COLUMNS = 1000
# The most columns a thinned route answers, whatever `max_steps` asks for.
MAX_COLUMNS = 5000
# Histograms per run by default, and at most.
HISTOGRAM_STEPS = 100
MAX_HISTOGRAM_STEPS = 1000
# Significant digits of the values of heatmaps and comparisons: a colour or a
# line cannot show more, and they halve the size of a response.
DIGITS = 4
# Histogram edges keep float32's precision (they place the buckets).
EDGE_DIGITS = 7

# Encoded heatmaps kept (gzipped JSON, about 1 MB each for 1,000 layers × 1,000
# columns), apart from the decoded runs so that they never push those out.
RESPONSE_ENTRIES = 16
RESPONSE_BYTES = 64 * 1024 * 1024

HISTOGRAM_KINDS = ("weight", "gradient")
# Rows of a heatmap: one per variable (and gate), or one per layer.
HEATMAP_BY = ("variable", "layer")


def _respond_json(request, body: Dict[str, Any], code: int = 200):
    return http_util.Respond(
        request, json.dumps(body, allow_nan=False), "application/json", code=code
    )


def _gzipped_json(body: Dict[str, Any]) -> bytes:
    """A JSON body compressed as `http_util.Respond` would, to be kept and sent as is."""
    return gzip.compress(json.dumps(body, allow_nan=False).encode("utf-8"), compresslevel=3, mtime=0)


def _json_route(handler):
    """Runs a route handler that returns a JSON body (or a ready response).

    A bad parameter is a 400 and an unknown name a 404, each with a JSON
    message naming it. The data provider's own errors keep their status; any
    other failure is logged with its traceback and answered 503 without it.
    """

    @functools.wraps(handler)
    @wrappers.Request.application
    def route(self, request):
        try:
            result = handler(self, request)
        except HttpError as exc:
            return _respond_json(request, {"error": str(exc)}, code=exc.code)
        except errors.PublicError as exc:
            code = exc.http_code if 400 <= exc.http_code < 500 else 503
            return _respond_json(request, {"error": str(exc)}, code=code)
        except Exception:  # pylint: disable=broad-except
            logger.exception(
                "tb_weightnorm: %s?%s failed", request.path, request.query_string.decode("latin-1")
            )
            return _respond_json(
                request,
                {"error": "Weight Health could not read this data; TensorBoard's log says why"},
                code=503,
            )
        if isinstance(result, wrappers.Response):
            return result
        return _respond_json(request, result)

    return route


def _thinned(
    history: NormHistory, column: np.ndarray, max_columns: Optional[int], how: str
) -> Tuple[np.ndarray, Dict[str, Any]]:
    """`column` ([steps, rows]) in at most `max_columns` buckets of logged
    steps (every step when None), and the response fields saying which."""
    n = len(history.steps)
    starts = bodies.bucket_starts(n, max_columns or max(n, 1))
    first, last = bodies.bucket_steps(history.steps, starts)
    _, wall_times = bodies.bucket_steps(history.wall_times, starts)
    return bodies.reduce_buckets(column, starts, how), {
        "logged_steps": n,
        "reduce": how,
        "steps": last.tolist(),
        "first_steps": first.tolist(),
        "wall_times": bodies.json_values(wall_times),
    }


def _column(history: NormHistory, stat: str) -> np.ndarray:
    column = history.column(stat)
    if column is None:
        raise not_found(f"run {quoted(history.run)} has no stat {quoted(stat)}; it has {', '.join(history.stats)}")
    return column


def _series(
    history: NormHistory,
    rows: Sequence[int],
    values: np.ndarray,
    digits: Optional[int],
    *,
    flag_global: bool = False,
) -> List[Dict]:
    """One {layer, variable, values} per row; `values` is [columns, len(rows)].
    With `flag_global`, each also says whether it is the whole-model row."""
    encoded = bodies.json_values(values.T, digits)
    out = []
    for i, v in zip(rows, encoded):
        entry: Dict[str, Any] = {"layer": history.layers[i], "variable": history.variables[i]}
        if flag_global:
            entry["global"] = history.variables[i] == schema.GLOBAL_ROW
        entry["values"] = v
        out.append(entry)
    return out


def _nonfinite_counts(history: NormHistory, stat: str, by: str) -> Optional[np.ndarray]:
    """NaN + Inf elements behind each heatmap cell ([steps, rows], rows as the
    heatmap's), of the tensor the stat is about (an update is measured from
    the weights); None when there are none, or the run did not count them.

    The stats are taken over the finite elements, so after a NaN a norm reads
    small or 0; without these counts the heatmap would paint the broken cells
    in the calmest colour.
    """
    kind = "weight" if stat.startswith("update/") else stat.split("/", 1)[0]
    names = [f"{kind}/nan_count", f"{kind}/inf_count"]
    if not all(n in history.stats for n in names):
        return None
    per_row = sum(np.nan_to_num(history.column(n)) for n in names)
    g = history.global_index()
    if g is not None:
        # The whole model has every variable's non-finite elements.
        per_row[:, g] = 0
        whole = per_row.sum(axis=1)
    if not per_row.any():
        return None
    if by == "layer":
        groups = layer_view.layer_rows(history.variables, history.layers, skip=(schema.GLOBAL_ROW,))
        per_row = layer_view.sum_by_layer(per_row, groups)
        return per_row if g is None else np.concatenate([per_row, whole[:, None]], axis=1)
    if g is not None:
        per_row[:, g] = whole
    return per_row


def _with_nonfinite(rows: List[Dict[str, Any]], counts: Optional[np.ndarray]) -> List[Dict[str, Any]]:
    """Adds `nonfinite` (counts per column) to the rows that have any."""
    if counts is None:
        return rows
    for row, row_counts in zip(rows, counts.T):
        if np.any(row_counts > 0):
            row["nonfinite"] = [int(c) for c in row_counts]
    return rows


def _by_layer(
    history: NormHistory, stat: str, column: np.ndarray
) -> Tuple[np.ndarray, Callable[[np.ndarray], List[Dict[str, Any]]]]:
    """(values [steps, layers (+ global)], rows encoder) of a heatmap by layer.

    Layers are combined at each logged step, before the steps are thinned:
    the max of a bucket is then the layer's own peak, not a mix of its
    variables' peaks at different steps. The `(global)` row is already a
    whole-model value, so it is passed on as logged.
    """
    groups = layer_view.run_layers(history)
    per_layer = layer_view.layer_column(history.values, history.stats, stat, groups)
    g = history.global_index()
    if g is not None:
        per_layer = np.concatenate([per_layer, column[:, [g]]], axis=1)

    def rows(values: np.ndarray) -> List[Dict[str, Any]]:
        encoded = bodies.json_values(values.T, DIGITS)
        out = [
            {"layer": group.layer, "variables": list(group.variables), "global": False, "values": v}
            for group, v in zip(groups, encoded)
        ]
        if g is not None:
            whole_model = {"layer": history.layers[g], "variables": [history.variables[g]], "global": True}
            out.append({**whole_model, "values": encoded[-1]})
        return out

    return per_layer, rows


def _heatmap(history: NormHistory, stat: str, by: str, limit: int, how: str) -> Dict[str, Any]:
    """The body of a `heatmap` response (see http_api.md)."""
    column = _column(history, stat)
    if by == "layer":
        column, encode = _by_layer(history, stat, column)
    else:
        every_row = range(len(history.variables))
        encode = functools.partial(_series, history, every_row, digits=DIGITS, flag_global=True)
    values, steps = _thinned(history, column, limit, how)
    del steps["wall_times"]
    counts = _nonfinite_counts(history, stat, by)
    if counts is not None:
        # The largest count in a bucket: one broken step marks its column.
        counts, _ = _thinned(history, counts, limit, "max")
    rows = _with_nonfinite(encode(values), counts)
    return {"run": history.run, "stat": stat, "by": by, "max_steps": limit, **steps, "rows": rows}


def _norm_signature(tags: Mapping[str, Any]) -> Tuple:
    """The cache signature of a run's norm tables, from its tensor time series."""
    return cache.listing_signature(norm_tables.with_prefix(tags, metadata.NORM_TABLE_TAG_PREFIX))


class WeightHealthPlugin(base_plugin.TBPlugin):
    """Serves the Weight Health tab and the data behind it."""

    plugin_name = metadata.PLUGIN_NAME

    def __init__(self, context: base_plugin.TBContext):
        self._data_provider = context.data_provider
        # Weight snapshots are files beside the event files, not summaries.
        self._logdir = context.logdir or ""
        self._cache = cache.SignedCache()
        self._responses = cache.SignedCache(RESPONSE_ENTRIES, RESPONSE_BYTES)
        self._warming = threading.Lock()

    def get_plugin_apps(self):
        return {
            "/index.js": self._serve_index_js,
            "/runs": self._serve_runs,
            "/table": self._serve_table,
            "/series": self._serve_series,
            "/heatmap": self._serve_heatmap,
            "/compare": self._serve_compare,
            "/histograms": self._serve_histograms,
            "/kernel_grids": self._serve_kernel_grids,
            "/kernel_image": self._serve_kernel_image,
            "/findings": self._serve_findings,
            "/snapshots": self._serve_snapshots,
            "/snapshot_distance": self._serve_snapshot_distance,
        }

    def is_active(self):
        # TensorBoard enables the tab when the data provider lists our plugin.
        return False

    def frontend_metadata(self):
        return base_plugin.FrontendMetadata(es_module_path="/index.js", tab_name="Weight Health")

    # -- reading (cached) ---------------------------------------------------

    @staticmethod
    def _where(request) -> Tuple[Any, str]:
        return plugin_util.context(request.environ), plugin_util.experiment_id(request.environ)

    def _listing(self, request, runs: Optional[Sequence[str]] = None) -> Dict[str, Dict[str, Any]]:
        """The plugin's tensor time series ({run: {tag: series}}) of `runs`
        (of every run when None) that hold norm tables; 404 for a run without."""
        ctx, eid = self._where(request)
        listing = norm_tables.list_plugin_tensors(self._data_provider, ctx, eid, runs)
        known = {
            run: tags
            for run, tags in listing.items()
            if norm_tables.with_prefix(tags, metadata.NORM_TABLE_TAG_PREFIX)
        }
        for run in runs or ():
            if run not in known:
                raise not_found(f"run {quoted(run)} has no Weight Health data")
        return known

    def _decoded(self, ctx, eid: str, run: str, tags: Mapping[str, Any]) -> Optional[NormHistory]:
        """The decoded norm tables of `run`, whose tensor series are `tags`;
        None if none is readable."""
        norms = norm_tables.with_prefix(tags, metadata.NORM_TABLE_TAG_PREFIX)
        return self._cache.get(
            (eid, run, "norms"),
            _norm_signature(tags),
            lambda: norm_tables.read_norm_history(self._data_provider, ctx, eid, run, norms),
        )

    def _history(self, request, run: str, tags: Mapping[str, Any]) -> NormHistory:
        """The decoded norm tables of `run`, whose tensor series are `tags`."""
        ctx, eid = self._where(request)
        history = self._decoded(ctx, eid, run, tags)
        if history is None:
            raise not_found(f"run {quoted(run)} has no readable Weight Health data (see TensorBoard's log)")
        return history

    def _run_history(self, request, run: str) -> NormHistory:
        return self._history(request, run, self._listing(request, [run])[run])

    def _histogram_history(self, request, run: str, tags: Mapping[str, Any]):
        ctx, eid = self._where(request)
        series = norm_tables.with_prefix(tags, metadata.HISTOGRAM_TAG_PREFIX)
        if not series:
            return None
        return self._cache.get(
            (eid, run, "histograms"),
            cache.listing_signature(series),
            lambda: histogram_tables.read_histogram_history(self._data_provider, ctx, eid, run, series),
        )

    def _kernel_grids(self, request, run: str, variable: str) -> kernel_grids.KernelGridHistory:
        ctx, eid = self._where(request)
        series = kernel_grids.list_kernel_grids(self._data_provider, ctx, eid, [run]).get(run, {})
        if not series:
            self._listing(request, [run])  # 404 if the run is unknown
            raise not_found(f"run {quoted(run)} has no kernel grids")
        found = kernel_grids.grids_by_variable(run, series).get(variable)
        if found is None:
            raise not_found(f"run {quoted(run)} has no kernel grid of variable {quoted(variable)}")
        tag, info = found
        return self._cache.get(
            (eid, run, "kernel_grid", tag),
            cache.listing_signature({tag: series[tag]}),
            lambda: kernel_grids.read_kernel_grids(self._data_provider, ctx, eid, run, tag, info),
        )

    def _findings(self, eid: str, history: NormHistory, tags: Mapping[str, Any]) -> Optional[List]:
        """The diagnosis of a run, or None if it failed (logged)."""

        def diagnose():
            try:
                return diagnosis.diagnose(history)
            except Exception:  # pylint: disable=broad-except
                logger.exception("tb_weightnorm: the diagnosis of run %r failed", history.run)
                return None

        return self._cache.get((eid, history.run, "findings"), _norm_signature(tags), diagnose)

    def _warm_up(self, ctx, eid: str, listing: Mapping[str, Mapping[str, Any]]) -> None:
        """Decodes and diagnoses the runs of `listing` in the background, in
        the tab's order, so that the tab's first requests (and a switch to
        another run) find them ready; stops at half the cache's budget. One
        warm-up at a time: a request for a run being decoded waits for it."""
        if not self._warming.acquire(blocking=False):
            return

        def warm():
            try:
                for run in sorted(listing):
                    if self._cache.nbytes > self._cache.max_bytes // 2:
                        break
                    history = self._decoded(ctx, eid, run, listing[run])
                    if history is not None:
                        self._findings(eid, history, listing[run])
            except Exception:  # pylint: disable=broad-except
                # The requests themselves will meet the same failure and say so.
                logger.debug("tb_weightnorm: warming the cache failed", exc_info=True)
            finally:
                self._warming.release()

        threading.Thread(target=warm, name="weight_health warm-up", daemon=True).start()

    # -- routes -------------------------------------------------------------

    @wrappers.Request.application
    def _serve_index_js(self, request):
        path = _STATIC / "index.js"
        if not path.is_file():
            return http_util.Respond(
                request,
                "The Weight Health frontend is not built. Reinstall tb_weightnorm "
                "(`pip install .` builds it).",
                "text/plain",
                code=404,
            )
        return http_util.Respond(request, path.read_bytes(), "text/javascript")

    @_json_route
    def _serve_runs(self, request):
        ctx, eid = self._where(request)
        listing = self._listing(request)
        self._warm_up(ctx, eid, listing)
        grids = kernel_grids.list_kernel_grids(self._data_provider, ctx, eid)
        return {"runs": [self._run_info(run, listing[run], grids.get(run, {})) for run in sorted(listing)]}

    @staticmethod
    def _run_info(run: str, tags: Mapping[str, Any], grids: Mapping[str, Any]) -> Dict[str, Any]:
        """What a run holds, from its metadata alone."""
        norms = norm_tables.with_prefix(tags, metadata.NORM_TABLE_TAG_PREFIX)
        tables = norm_tables.norm_table_names(run, norms).values()
        variables = {v: l for names in tables for v, l in zip(names.variables, names.layers)}
        stats = {s: None for names in tables for s in names.stats}
        notes = sorted({names.gradient_note for names in tables if names.gradient_note})
        histograms = norm_tables.with_prefix(tags, metadata.HISTOGRAM_TAG_PREFIX)
        hist_names = list(norm_tables.readable_names(run, histograms, histogram_tables.histogram_names).values())
        return {
            "run": run,
            "last_step": max(s.max_step for s in norms.values()),
            "variables": sum(v != schema.GLOBAL_ROW for v in variables),
            "global_row": schema.GLOBAL_ROW in variables,
            "layers": list(dict.fromkeys(l for v, l in variables.items() if v != schema.GLOBAL_ROW)),
            "stats": list(stats),
            "gradient_note": "; ".join(notes),
            "histograms": {
                "kinds": list(dict.fromkeys(k for n in hist_names for k in n.kinds)),
                "bins": sorted({n.bins for n in hist_names}),
                "variables": len({v for n in hist_names for v in n.variables}),
                "last_step": max(s.max_step for s in histograms.values()),
            }
            if hist_names
            else None,
            "kernel_grids": [
                {
                    "layer": info.layer,
                    "variable": variable,
                    "mode": info.mode,
                    "filters_total": info.filters_total,
                    "last_step": grids[tag].max_step,
                }
                for variable, (tag, info) in kernel_grids.grids_by_variable(run, grids).items()
            ],
        }

    @_json_route
    def _serve_table(self, request):
        run = params.required(request, "run")
        step = params.integer(request, "step")
        history = self._run_history(request, run)
        if step is None:
            index = len(history.steps) - 1
        else:
            index = history.step_index(step)
            if index is None:
                raise not_found(f"run {quoted(run)} has no logged step {step}")
        rows = bodies.json_values(history.values[index])
        return {
            "run": run,
            "step": int(history.steps[index]),
            "wall_time": bodies.json_number(history.wall_times[index]),
            "steps": history.steps.tolist(),
            "stats": list(history.stats),
            "rows": [
                {"layer": layer, "variable": variable, "values": values}
                for variable, layer, values in zip(history.variables, history.layers, rows)
            ],
        }

    @_json_route
    def _serve_series(self, request):
        run = params.required(request, "run")
        stat = params.required(request, "stat")
        wanted = params.listed(request, "variable")
        limit = params.max_steps(request, default=None, cap=MAX_COLUMNS)
        how = params.choice(request, "reduce", bodies.REDUCES, default="last")
        history = self._run_history(request, run)
        column = _column(history, stat)
        position = {v: i for i, v in enumerate(history.variables)}
        unknown = [v for v in wanted if v not in position]
        if unknown:
            raise not_found(f"run {quoted(run)} has no variable {quoted(unknown[0])}")
        rows = [position[v] for v in wanted] if wanted else list(range(len(history.variables)))
        values, steps = _thinned(history, column[:, rows], limit, how)
        return {"run": run, "stat": stat, **steps, "series": _series(history, rows, values, None)}

    @_json_route
    def _serve_heatmap(self, request):
        run = params.required(request, "run")
        stat = params.required(request, "stat")
        limit = params.max_steps(request, default=HEATMAP_COLUMNS, cap=MAX_COLUMNS)
        how = params.choice(request, "reduce", bodies.REDUCES, default="max")
        by = params.choice(request, "by", HEATMAP_BY, default="variable")
        tags = self._listing(request, [run])[run]
        history = self._history(request, run, tags)
        _, eid = self._where(request)
        # The largest response, asked again on every reload and every stat
        # switched back to: kept encoded while the run's tables stay the same.
        body = self._responses.get(
            (eid, run, "heatmap", stat, by, limit, how),
            _norm_signature(tags),
            lambda: _gzipped_json(_heatmap(history, stat, by, limit, how)),
            size=len,
        )
        return http_util.Respond(request, body, "application/json", content_encoding="gzip")

    @_json_route
    def _serve_compare(self, request):
        runs = params.listed(request, "run", at_least_one=True)
        stat = params.required(request, "stat")
        variables = params.listed(request, "variable")
        layers = params.listed(request, "layer")
        if not variables and not layers:
            raise params.bad_request("missing parameter 'variable' or 'layer' (give either, repeated as needed)")
        limit = params.max_steps(request, default=COMPARE_COLUMNS, cap=MAX_COLUMNS)
        how = params.choice(request, "reduce", bodies.REDUCES, default="last")
        listing = self._listing(request, runs)
        entries = [
            self._compared_run(self._history(request, run, listing[run]), stat, variables, layers, limit, how)
            for run in runs
        ]
        if not any(e["stat_logged"] for e in entries):
            raise not_found(f"no run of {params.quoted_all(runs)} has stat {quoted(stat)}")
        return {"stat": stat, "max_steps": limit, "runs": entries}

    @staticmethod
    def _compared_run(
        history: NormHistory, stat: str, variables: List[str], layers: List[str], limit: int, how: str
    ) -> Dict[str, Any]:
        position = {v: i for i, v in enumerate(history.variables)}
        rows = [position[v] for v in variables if v in position]
        for layer in layers:
            rows += [i for i, l in enumerate(history.layers) if l == layer and i not in rows]
        entry: Dict[str, Any] = {
            "run": history.run,
            "stat_logged": stat in history.stats,
            "missing": [v for v in variables if v not in position],
            "missing_layers": [l for l in layers if l not in history.layers],
        }
        if not entry["stat_logged"]:
            rows = []
        column = history.column(stat) if rows else np.zeros((len(history.steps), 0))
        values, steps = _thinned(history, column[:, rows], limit, how)
        return {**entry, **steps, "series": _series(history, rows, values, DIGITS)}

    @_json_route
    def _serve_histograms(self, request):
        runs = params.listed(request, "run", at_least_one=True)
        variable = params.required(request, "variable")
        kind = params.choice(request, "kind", HISTOGRAM_KINDS)
        limit = params.max_steps(request, default=HISTOGRAM_STEPS, cap=MAX_HISTOGRAM_STEPS)
        listing = self._listing(request, runs)
        entries = []
        for run in runs:
            history = self._histogram_history(request, run, listing[run])
            found = history.of(variable, kind) if history is not None else None
            if found is None:
                missing = "no histograms" if history is None else f"no {kind} histogram of {quoted(variable)}"
                entries.append({"run": run, "missing": missing})
                continue
            picked = bodies.evenly_spaced(len(found.steps), limit)
            entries.append(
                {
                    "run": run,
                    "layer": found.layer,
                    "logged_steps": len(found.steps),
                    "histograms": [_histogram(found, i) for i in picked],
                }
            )
        if all("missing" in e for e in entries):
            raise not_found(
                f"no run of {params.quoted_all(runs)} has a {kind} histogram of variable {quoted(variable)}"
            )
        return {"variable": variable, "kind": kind, "max_steps": limit, "runs": entries}

    @_json_route
    def _serve_kernel_grids(self, request):
        run = params.required(request, "run")
        variable = params.required(request, "variable")
        grids = self._kernel_grids(request, run, variable)
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
                    "wall_time": bodies.json_number(image.wall_time),
                    "width": image.width,
                    "height": image.height,
                    "scale": None if image.scale is None else bodies.json_values([image.scale], DIGITS)[0],
                    "filters_shown": image.filters_shown,
                    "url": "kernel_image?"
                    + urllib.parse.urlencode({"run": run, "variable": variable, "step": image.step}),
                }
                for image in grids.images
            ],
        }

    @_json_route
    def _serve_kernel_image(self, request):
        run = params.required(request, "run")
        variable = params.required(request, "variable")
        step = params.integer(request, "step", required=True)
        image = self._kernel_grids(request, run, variable).at(step)
        if image is None:
            raise not_found(f"run {quoted(run)} has no kernel grid of {quoted(variable)} at step {step}")
        ctx, _ = self._where(request)
        png = kernel_grids.read_png(self._data_provider, ctx, image)
        if png is None:
            norm_tables.warn_once(
                ("png", run, variable),
                "tb_weightnorm: the kernel grid of %r at step %d in run %r is not a PNG; "
                "it is answered 404 (said once per kernel grid, whichever of its steps)",
                variable,
                step,
                run,
            )
            raise not_found(f"the kernel grid of {quoted(variable)} at step {step} in run {quoted(run)} is unreadable")
        return http_util.Respond(request, png, "image/png")

    @_json_route
    def _serve_findings(self, request):
        chosen = params.listed(request, "run")
        listing = self._listing(request, chosen or None)
        findings, judged, skipped = [], [], []
        for run in chosen or sorted(listing):
            try:
                history = self._history(request, run, listing[run])
            except HttpError as exc:
                if chosen:
                    raise
                skipped.append({"run": run, "reason": str(exc)})
                continue
            found = self._findings(self._where(request)[1], history, listing[run])
            if found is None:
                skipped.append({"run": run, "reason": "the diagnosis failed (see TensorBoard's log)"})
                continue
            judged.append(run)
            findings += [bodies.finding_object(run, f) for f in found]
        findings.sort(
            key=lambda f: (-diagnosis.severity_rank(f["severity"]), f["first_step"], f["run"], f["rule"])
        )
        return {"runs": judged, "findings": findings, "skipped": skipped}

    # -- weight snapshots (files in the run's folder, not summaries) ----------

    def _snapshots(self, request, run: str) -> snapshots.Snapshots:
        """The readable snapshots of a known run; unreadable files are logged."""
        self._listing(request, [run])  # 404 for an unknown run
        found = snapshots.read(snapshots.folder_of(_run_folder(self._logdir, run)), skip_unreadable=True)
        for _, reason in found.unreadable:
            norm_tables.warn_once("tb_weightnorm: skipping %s", reason)
        return found

    @_json_route
    def _serve_snapshots(self, request):
        run = params.required(request, "run")
        found = self._snapshots(request, run)
        return {
            "run": run,
            "snapshots": [
                {**_snapshot_object(found[epoch]), "variables": len(found[epoch].variables)}
                for epoch in found.epochs
            ],
            # Named by file: the server's folders are none of the client's business.
            "skipped": [
                {"file": os.path.basename(path), "reason": reason.replace(path, os.path.basename(path))}
                for path, reason in found.unreadable
            ],
        }

    @_json_route
    def _serve_snapshot_distance(self, request):
        run = params.required(request, "run")
        epochs = [params.integer(request, name, minimum=0, required=True) for name in ("from", "to")]
        found = self._snapshots(request, run)
        for epoch in epochs:
            if epoch not in found:
                known = ", ".join(map(str, found.epochs)) or "none"
                raise not_found(f"run {run!r} has no weight snapshot of epoch {epoch}; epochs with one: {known}")
        a, b = found[epochs[0]], found[epochs[1]]
        _, eid = self._where(request)
        comparison = self._cache.get(
            (eid, run, "snapshot_distance", a.epoch, b.epoch),
            (_file_signature(a.path), _file_signature(b.path)),
            lambda: distance.compare(
                a.weights(), b.weights(), {**b.layers, **a.layers},
                names=(f"epoch {a.epoch}", f"epoch {b.epoch}"),
            ),
        )
        return {
            "run": run,
            "from": _snapshot_object(a),
            "to": _snapshot_object(b),
            "total": _distance_object(distance.total(comparison)),
            "layers": [
                {"layer": layer.name, **_distance_object(layer),
                 "variables": [
                     {"variable": v.name, "shape": list(a.info(v.name).shape), **_distance_object(v)}
                     for v in variables
                 ]}
                for layer, variables in comparison.layers
            ],
            "unmatched": [{"variable": name, "reason": reason} for name, reason in comparison.unmatched],
        }


def _run_folder(logdir: str, run: str) -> str:
    """The folder of a run that TensorBoard names `run` (its path under the logdir)."""
    if not logdir:
        raise not_found("weight snapshots are read from the folder given as --logdir; this TensorBoard has none")
    if "://" in logdir:
        raise not_found(f"weight snapshots are read from a local --logdir only; this one is {logdir!r}")
    root = os.path.realpath(os.path.expanduser(logdir))
    folder = os.path.realpath(os.path.join(root, *[p for p in run.split("/") if p not in ("", ".")]))
    if os.path.commonpath([root, folder]) != root:
        raise not_found(f"run {run!r} is not inside the log directory")
    return folder


def _file_signature(path: str) -> Tuple:
    stat = os.stat(path)
    return (path, stat.st_mtime_ns, stat.st_size)


def _snapshot_object(snapshot: snapshots.Snapshot) -> Dict[str, Any]:
    return {"epoch": snapshot.epoch, "step": snapshot.step, "wall_time": snapshot.wall_time}


def _distance_object(d: distance.Distance) -> Dict[str, Any]:
    return {
        "distance": bodies.json_number(d.distance),
        "relative": bodies.json_number(d.relative),
        "norm_from": bodies.json_number(d.norm_from),
        "norm_to": bodies.json_number(d.norm_to),
        "nonfinite": d.nonfinite,
    }


def _histogram(found: histogram_tables.VariableHistograms, i: int) -> Dict[str, Any]:
    row = found.rows[i]
    low, high = bodies.json_values(row[:2], EDGE_DIGITS)
    nan, neg_inf, pos_inf = bodies.json_counts(row[-3:])
    return {
        "step": int(found.steps[i]),
        "wall_time": bodies.json_number(found.wall_times[i]),
        "min": low,
        "max": high,
        "counts": bodies.json_counts(row[2:-3]),
        "nan_count": nan,
        "neg_inf_count": neg_inf,
        "pos_inf_count": pos_inf,
    }


class WeightHealthLoader(base_plugin.TBLoader):
    """Loads the plugin, keeping every logged step by default.

    TensorBoard's loaders thin a plugin's data when they load it (the default
    loader keeps 100 tensors per time series, `--load_fast=false` only 10 for a
    third-party plugin). A norm table is small and one per logged step, so keep
    them all unless the user chose otherwise with `--samples_per_plugin`.
    """

    def fix_flags(self, flags):
        samples = getattr(flags, "samples_per_plugin", None)
        if samples is None:
            samples = {}
            flags.samples_per_plugin = samples
        samples.setdefault(metadata.PLUGIN_NAME, 0)

    def load(self, context):
        return WeightHealthPlugin(context)
