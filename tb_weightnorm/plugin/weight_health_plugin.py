"""The TensorBoard plugin: the "Weight Health" tab's backend and its routes.

It reads only through `context.data_provider`, so it works under TensorBoard's
default (fast, Rust) loader and under `--load_fast=false`. Routes are
documented in http_api.md beside this file. This module is about HTTP:
parameters in, JSON out, one small handler per route. Runs are read (and
kept decoded) by `run_reader.py`, what a chart shows of a run is computed in
`read/charts.py`, and the JSON bodies are shaped in `bodies.py`.
"""

from __future__ import annotations

import functools
import gzip
import json
import logging
import pathlib
from typing import Any, Callable, Dict, List, Mapping, Tuple

import numpy as np
from tensorboard import errors
from tensorboard.backend import http_util
from tensorboard.plugins import base_plugin
from werkzeug import wrappers

from tb_weightnorm.plugin import bodies, cache, params, run_reader
from tb_weightnorm.plugin.bodies import DIGITS
from tb_weightnorm.plugin.params import HttpError, not_found, quoted
from tb_weightnorm.read import charts, histogram_tables, kernel_grids, layer_view, norm_tables
from tb_weightnorm.read.history import NormHistory
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


def _column(history: NormHistory, stat: str) -> np.ndarray:
    column = history.column(stat)
    if column is None:
        raise not_found(f"run {quoted(history.run)} has no stat {quoted(stat)}; it has {', '.join(history.stats)}")
    return column


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
        encode = functools.partial(bodies.series_objects, history, every_row, digits=DIGITS, flag_global=True)
    thinned = charts.thin(history, column, limit, how)
    counts = charts.thinned_nonfinite_counts(history, stat, by, limit)
    rows = bodies.with_nonfinite(encode(thinned.values), counts)
    return bodies.heatmap_body(history.run, stat, by, limit, thinned, rows)


def _run_object(run: str, tags: Mapping[str, Any], grids: Mapping[str, Any]) -> Dict[str, Any]:
    """What a run holds, from the metadata of its time series `tags` and kernel grids `grids`."""
    norms = norm_tables.with_prefix(tags, metadata.NORM_TABLE_TAG_PREFIX)
    histograms = norm_tables.with_prefix(tags, metadata.HISTOGRAM_TAG_PREFIX)
    return bodies.run_object(
        run,
        tables=list(norm_tables.norm_table_names(run, norms).values()),
        last_step=max(s.max_step for s in norms.values()),
        histograms=list(norm_tables.readable_names(run, histograms, histogram_tables.histogram_names).values()),
        histograms_last_step=max((s.max_step for s in histograms.values()), default=None),
        kernel_grids={
            variable: (info, grids[tag].max_step)
            for variable, (tag, info) in kernel_grids.grids_by_variable(run, grids).items()
        },
    )


class WeightHealthPlugin(base_plugin.TBPlugin):
    """Serves the Weight Health tab and the data behind it."""

    plugin_name = metadata.PLUGIN_NAME

    def __init__(self, context: base_plugin.TBContext):
        self._reader = run_reader.RunReader(context.data_provider, context.logdir or "")
        self._responses = cache.SignedCache(RESPONSE_ENTRIES, RESPONSE_BYTES)

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
        listing = self._reader.listing(request)
        self._reader.warm_up(request, listing)
        grids = self._reader.kernel_grid_series(request)
        return {"runs": [_run_object(run, listing[run], grids.get(run, {})) for run in sorted(listing)]}

    @_json_route
    def _serve_table(self, request):
        run = params.required(request, "run")
        step = params.integer(request, "step")
        history = self._reader.run_history(request, run)
        if step is None:
            index = len(history.steps) - 1
        else:
            index = history.step_index(step)
            if index is None:
                raise not_found(f"run {quoted(run)} has no logged step {step}")
        return bodies.table_body(history, index)

    @_json_route
    def _serve_series(self, request):
        run = params.required(request, "run")
        stat = params.required(request, "stat")
        wanted = params.listed(request, "variable")
        limit = params.max_steps(request, default=None, cap=MAX_COLUMNS)
        how = params.choice(request, "reduce", charts.REDUCES, default="last")
        history = self._reader.run_history(request, run)
        column = _column(history, stat)
        known = set(history.variables)
        unknown = [v for v in wanted if v not in known]
        if unknown:
            raise not_found(f"run {quoted(run)} has no variable {quoted(unknown[0])}")
        rows = charts.chosen_rows(history, wanted, ()) if wanted else list(range(len(history.variables)))
        thinned = charts.thin(history, column[:, rows], limit, how)
        series = bodies.series_objects(history, rows, thinned.values, None)
        return {"run": run, "stat": stat, **bodies.thinned_fields(thinned), "series": series}

    @_json_route
    def _serve_heatmap(self, request):
        run = params.required(request, "run")
        stat = params.required(request, "stat")
        limit = params.max_steps(request, default=HEATMAP_COLUMNS, cap=MAX_COLUMNS)
        how = params.choice(request, "reduce", charts.REDUCES, default="max")
        by = params.choice(request, "by", HEATMAP_BY, default="variable")
        tags = self._reader.listing(request, [run])[run]
        history = self._reader.history(request, run, tags)
        _, eid = run_reader.where(request)
        # The largest response, asked again on every reload and every stat
        # switched back to: kept encoded while the run's tables stay the same.
        body = self._responses.get(
            (eid, run, "heatmap", stat, by, limit, how),
            run_reader.norm_signature(tags),
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
        how = params.choice(request, "reduce", charts.REDUCES, default="last")
        listing = self._reader.listing(request, runs)
        entries = []
        for run in runs:
            history = self._reader.history(request, run, listing[run])
            rows = charts.chosen_rows(history, variables, layers) if stat in history.stats else []
            thinned = charts.thin_rows(history, stat, rows, limit, how)
            entries.append(bodies.compared_run_object(history, stat, variables, layers, thinned, rows))
        if not any(e["stat_logged"] for e in entries):
            raise not_found(f"no run of {params.quoted_all(runs)} has stat {quoted(stat)}")
        return {"stat": stat, "max_steps": limit, "runs": entries}

    @_json_route
    def _serve_histograms(self, request):
        runs = params.listed(request, "run", at_least_one=True)
        variable = params.required(request, "variable")
        kind = params.choice(request, "kind", HISTOGRAM_KINDS)
        limit = params.max_steps(request, default=HISTOGRAM_STEPS, cap=MAX_HISTOGRAM_STEPS)
        listing = self._reader.listing(request, runs)
        entries = []
        for run in runs:
            history = self._reader.histogram_history(request, run, listing[run])
            found = history.of(variable, kind) if history is not None else None
            if found is None:
                missing = "no histograms" if history is None else f"no {kind} histogram of {quoted(variable)}"
                entries.append({"run": run, "missing": missing})
                continue
            picked = charts.evenly_spaced(len(found.steps), limit)
            entries.append(bodies.histogram_run_object(run, found, picked))
        if all("missing" in e for e in entries):
            raise not_found(
                f"no run of {params.quoted_all(runs)} has a {kind} histogram of variable {quoted(variable)}"
            )
        return {"variable": variable, "kind": kind, "max_steps": limit, "runs": entries}

    @_json_route
    def _serve_kernel_grids(self, request):
        run = params.required(request, "run")
        variable = params.required(request, "variable")
        return bodies.kernel_grids_body(run, variable, self._reader.kernel_grid_history(request, run, variable))

    @_json_route
    def _serve_kernel_image(self, request):
        run = params.required(request, "run")
        variable = params.required(request, "variable")
        step = params.integer(request, "step", required=True)
        image = self._reader.kernel_grid_history(request, run, variable).at(step)
        if image is None:
            raise not_found(f"run {quoted(run)} has no kernel grid of {quoted(variable)} at step {step}")
        png = self._reader.kernel_png(request, image)
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
        listing = self._reader.listing(request, chosen or None)
        judged, findings, skipped = [], [], []
        for run in chosen or sorted(listing):
            try:
                history = self._reader.history(request, run, listing[run])
            except HttpError as exc:
                if chosen:
                    raise
                skipped.append({"run": run, "reason": str(exc)})
                continue
            found = self._reader.findings(run_reader.where(request)[1], history, listing[run])
            if found is None:
                skipped.append({"run": run, "reason": "the diagnosis failed (see TensorBoard's log)"})
                continue
            judged.append(run)
            findings += [bodies.finding_object(run, f) for f in found]
        return bodies.findings_body(judged, findings, skipped)

    @_json_route
    def _serve_snapshots(self, request):
        run = params.required(request, "run")
        return bodies.snapshots_body(run, self._reader.run_snapshots(request, run))

    @_json_route
    def _serve_snapshot_distance(self, request):
        run = params.required(request, "run")
        epochs = [params.integer(request, name, minimum=0, required=True) for name in ("from", "to")]
        found = self._reader.run_snapshots(request, run)
        for epoch in epochs:
            if epoch not in found:
                known = ", ".join(map(str, found.epochs)) or "none"
                raise not_found(f"run {run!r} has no weight snapshot of epoch {epoch}; epochs with one: {known}")
        a, b = found[epochs[0]], found[epochs[1]]
        return bodies.snapshot_distance_body(run, a, b, self._reader.snapshot_distance(request, run, a, b))


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
