"""What the routes read of the runs, through TensorBoard's data provider.

Decoded runs (norm tables, histograms, kernel grid lists, findings, snapshot
distances) are kept in a `cache.SignedCache` while the data provider's listing
of each run stays the same, and the runs the tab lists are decoded in the
background before it asks. An unknown run or name is a 404 (`params.not_found`)
naming it, so that the routes need not check.
"""

from __future__ import annotations

import logging
import os
import threading
from typing import Any, Dict, List, Mapping, Optional, Sequence, Tuple

from tensorboard import plugin_util

from tb_weightnorm import diagnosis, snapshots
from tb_weightnorm.plugin import cache
from tb_weightnorm.plugin.params import not_found, quoted
from tb_weightnorm.read import histogram_tables, kernel_grids, norm_tables
from tb_weightnorm.read.history import NormHistory
from tb_weightnorm.snapshots import distance
from tb_weightnorm.wire import metadata

logger = logging.getLogger(__name__)


def where(request) -> Tuple[Any, str]:
    """(TensorBoard's request context, experiment id) of `request`."""
    return plugin_util.context(request.environ), plugin_util.experiment_id(request.environ)


def norm_signature(tags: Mapping[str, Any]) -> Tuple:
    """The cache signature of a run's norm tables, from its tensor time series."""
    return cache.listing_signature(norm_tables.with_prefix(tags, metadata.NORM_TABLE_TAG_PREFIX))


class RunReader:
    """Reads runs for the routes, decoding each once while it stays the same.

    Args:
        data_provider: TensorBoard's data provider (`context.data_provider`).
        logdir: the folder given as `--logdir` ("" if none), where weight
            snapshots are read: they are files beside the event files, not summaries.
    """

    def __init__(self, data_provider, logdir: str):
        self._data_provider = data_provider
        self._logdir = logdir
        self._cache = cache.SignedCache()
        self._warming = threading.Lock()

    def listing(self, request, runs: Optional[Sequence[str]] = None) -> Dict[str, Dict[str, Any]]:
        """The plugin's tensor time series ({run: {tag: series}}) of `runs`
        (of every run when None) that hold norm tables; 404 for a run without."""
        ctx, eid = where(request)
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
            norm_signature(tags),
            lambda: norm_tables.read_norm_history(self._data_provider, ctx, eid, run, norms),
        )

    def history(self, request, run: str, tags: Mapping[str, Any]) -> NormHistory:
        """The decoded norm tables of `run`, whose tensor series are `tags`."""
        ctx, eid = where(request)
        history = self._decoded(ctx, eid, run, tags)
        if history is None:
            raise not_found(f"run {quoted(run)} has no readable Weight Health data (see TensorBoard's log)")
        return history

    def run_history(self, request, run: str) -> NormHistory:
        """The decoded norm tables of `run`; 404 for an unknown run."""
        return self.history(request, run, self.listing(request, [run])[run])

    def histogram_history(
        self, request, run: str, tags: Mapping[str, Any]
    ) -> Optional[histogram_tables.HistogramHistory]:
        """The decoded histograms of `run`, whose tensor series are `tags`; None if it logged none."""
        ctx, eid = where(request)
        series = norm_tables.with_prefix(tags, metadata.HISTOGRAM_TAG_PREFIX)
        if not series:
            return None
        return self._cache.get(
            (eid, run, "histograms"),
            cache.listing_signature(series),
            lambda: histogram_tables.read_histogram_history(self._data_provider, ctx, eid, run, series),
        )

    def kernel_grid_series(self, request) -> Dict[str, Dict[str, Any]]:
        """Every run's kernel grid time series ({run: {tag: series}})."""
        ctx, eid = where(request)
        return kernel_grids.list_kernel_grids(self._data_provider, ctx, eid)

    def kernel_grid_history(self, request, run: str, variable: str) -> kernel_grids.KernelGridHistory:
        """The kernel grids of `variable` in `run`; 404 if there are none."""
        ctx, eid = where(request)
        series = kernel_grids.list_kernel_grids(self._data_provider, ctx, eid, [run]).get(run, {})
        if not series:
            self.listing(request, [run])  # 404 if the run is unknown
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

    def kernel_png(self, request, image: kernel_grids.KernelGridImage) -> Optional[bytes]:
        """The PNG of a kernel grid image; None if its blob is not one."""
        ctx, _ = where(request)
        return kernel_grids.read_png(self._data_provider, ctx, image)

    def findings(self, eid: str, history: NormHistory, tags: Mapping[str, Any]) -> Optional[List]:
        """The diagnosis of a run, or None if it failed (logged)."""

        def diagnose():
            try:
                return diagnosis.diagnose(history)
            except Exception:  # pylint: disable=broad-except
                logger.exception("tb_weightnorm: the diagnosis of run %r failed", history.run)
                return None

        return self._cache.get((eid, history.run, "findings"), norm_signature(tags), diagnose)

    def warm_up(self, request, listing: Mapping[str, Mapping[str, Any]]) -> None:
        """Decodes and diagnoses the runs of `listing` in the background, in
        the tab's order, so that the tab's first requests (and a switch to
        another run) find them ready; stops at half the cache's budget. One
        warm-up at a time: a request for a run being decoded waits for it."""
        ctx, eid = where(request)
        if not self._warming.acquire(blocking=False):
            return

        def warm():
            try:
                for run in sorted(listing):
                    if self._cache.nbytes > self._cache.max_bytes // 2:
                        break
                    history = self._decoded(ctx, eid, run, listing[run])
                    if history is not None:
                        self.findings(eid, history, listing[run])
            except Exception:  # pylint: disable=broad-except
                # The requests themselves will meet the same failure and say so.
                logger.debug("tb_weightnorm: warming the cache failed", exc_info=True)
            finally:
                self._warming.release()

        threading.Thread(target=warm, name="weight_health warm-up", daemon=True).start()

    # -- weight snapshots (files in the run's folder, not summaries) ----------

    def run_snapshots(self, request, run: str) -> snapshots.Snapshots:
        """The readable snapshots of a known run; unreadable files are logged."""
        self.listing(request, [run])  # 404 for an unknown run
        found = snapshots.read(snapshots.folder_of(_run_folder(self._logdir, run)), skip_unreadable=True)
        for _, reason in found.unreadable:
            norm_tables.warn_once("tb_weightnorm: skipping %s", reason)
        return found

    def snapshot_distance(
        self, request, run: str, a: snapshots.Snapshot, b: snapshots.Snapshot
    ) -> distance.Comparison:
        """How far the weights of `run` moved from snapshot `a` to `b`."""
        _, eid = where(request)
        return self._cache.get(
            (eid, run, "snapshot_distance", a.epoch, b.epoch),
            (_file_signature(a.path), _file_signature(b.path)),
            lambda: distance.compare(
                a.weights(), b.weights(), {**b.layers, **a.layers},
                names=(f"epoch {a.epoch}", f"epoch {b.epoch}"),
            ),
        )


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
