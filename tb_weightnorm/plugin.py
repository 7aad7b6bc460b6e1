"""The TensorBoard plugin: the "Weight Health" tab's backend and its routes.

It reads only through `context.data_provider`, so it works under TensorBoard's
default (fast, Rust) loader and under `--load_fast=false`. Routes are
documented in http_api.md beside this file.
"""

from __future__ import annotations

import functools
import json
import math
import pathlib
from typing import Any, Dict, List, Optional

import numpy as np
from tensorboard import plugin_util
from tensorboard.backend import http_util
from tensorboard.plugins import base_plugin
from werkzeug import wrappers

from tb_weightnorm import metadata, reader

_STATIC = pathlib.Path(__file__).resolve().parent / "static"


class _HttpError(Exception):
    def __init__(self, code: int, message: str):
        super().__init__(message)
        self.code = code


def _bad_request(message: str) -> _HttpError:
    return _HttpError(400, message)


def _not_found(message: str) -> _HttpError:
    return _HttpError(404, message)


def _json_number(value: float):
    """JSON has no NaN or Infinity: NaN (not measured) is null, ±inf a string."""
    if math.isnan(value):
        return None
    if math.isinf(value):
        return "Infinity" if value > 0 else "-Infinity"
    return value


def _json_numbers(values: np.ndarray) -> List[Any]:
    return [_json_number(v) for v in values.tolist()]


def _respond_json(request, body: Dict[str, Any], code: int = 200):
    return http_util.Respond(
        request, json.dumps(body, allow_nan=False), "application/json", code=code
    )


def _json_route(handler):
    """Runs a route handler; a bad parameter is 400 and an unknown name 404,
    each with a JSON message naming it."""

    @functools.wraps(handler)
    @wrappers.Request.application
    def route(self, request):
        try:
            return _respond_json(request, handler(self, request))
        except _HttpError as exc:
            return _respond_json(request, {"error": str(exc)}, code=exc.code)

    return route


def _required(request, name: str) -> str:
    value = request.args.get(name)
    if value is None or value == "":
        raise _bad_request(f"missing parameter {name!r}")
    return value


def _int_param(request, name: str) -> Optional[int]:
    value = request.args.get(name)
    if value is None or value == "":
        return None
    try:
        return int(value)
    except ValueError:
        raise _bad_request(f"parameter {name!r} must be an integer; got {value!r}") from None


class WeightHealthPlugin(base_plugin.TBPlugin):
    """Serves the Weight Health tab and the data behind it."""

    plugin_name = metadata.PLUGIN_NAME

    def __init__(self, context: base_plugin.TBContext):
        self._data_provider = context.data_provider

    def get_plugin_apps(self):
        return {
            "/index.js": self._serve_index_js,
            "/runs": self._serve_runs,
            "/table": self._serve_table,
            "/series": self._serve_series,
        }

    def is_active(self):
        # TensorBoard enables the tab when the data provider lists our plugin.
        return False

    def frontend_metadata(self):
        return base_plugin.FrontendMetadata(es_module_path="/index.js", tab_name="Weight Health")

    # -- helpers ------------------------------------------------------------

    def _history(self, request, run: str) -> reader.NormHistory:
        history = reader.read_norm_history(
            self._data_provider,
            plugin_util.context(request.environ),
            plugin_util.experiment_id(request.environ),
            run,
        )
        if history is None:
            raise _not_found(f"run {run!r} has no Weight Health data")
        return history

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
        listing = reader.list_norm_series(
            self._data_provider,
            plugin_util.context(request.environ),
            plugin_util.experiment_id(request.environ),
        )
        runs = []
        for run in sorted(listing):
            variables, stats = set(), {}
            for series in listing[run].values():
                try:
                    names = metadata.norm_table_names(series.plugin_content)
                except metadata.UnreadableMetadata:
                    continue
                if names is not None:
                    variables.update(v for v in names.variables if v != metadata.GLOBAL_ROW)
                    for stat in names.stats:
                        stats.setdefault(stat, None)
            runs.append(
                {
                    "run": run,
                    "last_step": max(s.max_step for s in listing[run].values()),
                    "variables": len(variables),
                    "stats": list(stats),
                }
            )
        return {"runs": runs}

    @_json_route
    def _serve_table(self, request):
        run = _required(request, "run")
        step = _int_param(request, "step")
        history = self._history(request, run)
        if step is None:
            index = len(history.steps) - 1
        else:
            index = history.step_index(step)
            if index is None:
                raise _not_found(f"run {run!r} has no logged step {step}")
        values = history.values[index]
        return {
            "run": run,
            "step": int(history.steps[index]),
            "wall_time": float(history.wall_times[index]),
            "steps": history.steps.tolist(),
            "stats": list(history.stats),
            "rows": [
                {"layer": layer, "variable": variable, "values": _json_numbers(values[i])}
                for i, (variable, layer) in enumerate(zip(history.variables, history.layers))
            ],
        }

    @_json_route
    def _serve_series(self, request):
        run = _required(request, "run")
        stat = _required(request, "stat")
        wanted = request.args.getlist("variable")
        history = self._history(request, run)
        if stat not in history.stats:
            raise _not_found(f"run {run!r} has no stat {stat!r}; it has {', '.join(history.stats)}")
        column = history.values[:, :, history.stats.index(stat)]
        rows = range(len(history.variables))
        if wanted:
            position = {v: i for i, v in enumerate(history.variables)}
            unknown = [v for v in wanted if v not in position]
            if unknown:
                raise _not_found(f"run {run!r} has no variable {unknown[0]!r}")
            rows = [position[v] for v in wanted]
        return {
            "run": run,
            "stat": stat,
            "steps": history.steps.tolist(),
            "wall_times": history.wall_times.tolist(),
            "series": [
                {
                    "layer": history.layers[i],
                    "variable": history.variables[i],
                    "values": _json_numbers(column[:, i]),
                }
                for i in rows
            ],
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
