"""Writes a log directory's norm tables, histograms and findings as CSV files:
`tb_weightnorm.export_csv` and `tb-weightnorm export`.

A file is written in full or not at all: each goes to a temporary file beside
its destination, and they are renamed into place together once every one is
written, so a failure (a log directory without the data asked for, a full
disk) leaves any earlier file of that name as it was.
"""

from __future__ import annotations

import contextlib
import os
import sys
import tempfile
from typing import Dict, Iterator, Optional, Sequence, Union

from tb_weightnorm import diagnosis
from tb_weightnorm.read import export

STDOUT = "-"

PathLike = Union[str, "os.PathLike[str]"]


def export_csv(
    logdir: PathLike,
    *,
    norms: Optional[PathLike] = None,
    histograms: Optional[PathLike] = None,
    findings: Optional[PathLike] = None,
    runs: Optional[Sequence[str]] = None,
    layout: str = "long",
    thresholds: Optional[diagnosis.Thresholds] = None,
) -> None:
    """Writes what `tb_weightnorm.load`, `load_histograms` and `load_findings`
    return for `logdir` as CSV files (UTF-8, a header row, no index column;
    NaN as an empty field, infinities as `inf` and `-inf`, numbers written so
    they read back exactly).

    Args:
        logdir: a TensorBoard log directory (searched recursively for runs).
        norms: where to write the norm tables, in `layout`.
        histograms: where to write the weight and gradient histograms: one row
            per bucket (see `load_histograms`).
        findings: where to write the findings of the diagnosis: one row per
            finding.
        runs: glob patterns of the run names to export; all runs when None.
        layout: of the norm tables: `"long"` (one row per run, step,
            variable and stat: what `tb_weightnorm.load(logdir)` returns) or
            `"wide"` (one row per run, step and variable, a column per stat).
        thresholds: the diagnosis thresholds for `findings`.

        Each of `norms`, `histograms` and `findings` is a file path, or `"-"`
        for standard output (for one of them at most).

    Raises:
        FileNotFoundError: `logdir` is not a directory.
        tb_weightnorm.read.export.NoWeightHealthData: it has no Weight Health data,
            no run matches `runs`, or the runs have no histograms and
            `histograms` was asked for.
        OSError: a file cannot be written (nothing is then written).

    Example:

    ```python
    tb_weightnorm.export_csv("logs", norms="norms.csv", findings="findings.csv")
    norms = pandas.read_csv("norms.csv")
    norms.pivot_table(index="step", columns="layer", values="weight/l2", aggfunc="max")
    ```
    """
    outputs = {kind: path for kind, path in (("norms", norms), ("histograms", histograms), ("findings", findings)) if path is not None}
    _check_outputs(outputs, layout)
    logdir = os.fspath(logdir)
    with _replacing(outputs) as files:
        logs = export.LogDir(logdir)
        chosen = logs.runs(runs, required=True)
        frames = {}
        if "norms" in outputs or "findings" in outputs:
            histories = [h for h in map(logs.norms, chosen) if h is not None]
            if "norms" in outputs:
                frames["norms"] = export.norms_frame(histories, layout)
            if "findings" in outputs:
                frames["findings"] = export.findings_frame(histories, thresholds)
        if "histograms" in outputs:
            found = [h for h in map(logs.histograms, chosen) if h is not None]
            if not found:
                raise export.NoWeightHealthData(
                    f"no histograms in {', '.join(chosen)} under {logdir!r}: WeightHealthCallback "
                    "logs them every 100 steps by default (histogram_every_n_steps; 0 turns them off), "
                    "and a run shorter than that has only its first step's"
                )
            frames["histograms"] = export.histograms_frame(found)
        # Standard output last: it cannot be taken back if writing a file fails.
        for kind in sorted(frames, key=lambda k: files[k] is sys.stdout):
            frames[kind].to_csv(files[kind], index=False, lineterminator="\n")


def _check_outputs(outputs: Dict[str, PathLike], layout: str) -> None:
    if not outputs:
        raise ValueError("nothing to export: give a file for norms, histograms or findings")
    if layout not in export.LAYOUTS:
        raise ValueError(f"layout must be one of {', '.join(export.LAYOUTS)}; got {layout!r}")
    paths = [os.fspath(p) for p in outputs.values()]
    if paths.count(STDOUT) > 1:
        raise ValueError("only one of norms, histograms and findings can go to standard output ('-')")
    files = [p for p in paths if p != STDOUT]
    if len({os.path.realpath(p) for p in files}) < len(files):
        raise ValueError(f"two exports to the same file: {', '.join(paths)}; give each its own")
    for path in files:
        if os.path.isdir(path):
            raise IsADirectoryError(f"{path!r} is a directory: give a file name, e.g. {os.path.join(path, 'norms.csv')!r}")


@contextlib.contextmanager
def _replacing(outputs: Dict[str, PathLike]) -> Iterator[Dict[str, object]]:
    """Open text files for `outputs` ({kind: path}): temporary files beside
    their paths (standard output for "-"), renamed to the paths when the
    block ends without an error and removed when it raises."""
    files: Dict[str, object] = {}
    temporary: Dict[str, str] = {}
    try:
        for kind, path in outputs.items():
            path = os.fspath(path)
            if path == STDOUT:
                files[kind] = sys.stdout
                continue
            folder, name = os.path.split(os.path.abspath(path))
            try:
                handle, temporary[kind] = tempfile.mkstemp(prefix=f".{name}.", suffix=".tmp", dir=folder)
            except OSError as exc:
                raise OSError(f"cannot write {path!r}: {exc.strerror or exc}") from None
            files[kind] = os.fdopen(handle, "w", encoding="utf-8", newline="")
        yield files
        for kind, name in temporary.items():
            files[kind].close()
            os.chmod(name, _mode_for(os.fspath(outputs[kind])))
        for kind, name in temporary.items():
            os.replace(name, os.fspath(outputs[kind]))
    finally:
        for kind, name in temporary.items():
            files[kind].close()
            with contextlib.suppress(FileNotFoundError):
                os.remove(name)


def _mode_for(path: str) -> int:
    """The permissions a file written to `path` gets: those of the file it
    replaces, or what a newly created file would get (temporary files are
    created readable by their owner only)."""
    try:
        return os.stat(path).st_mode & 0o7777
    except FileNotFoundError:
        umask = os.umask(0)
        os.umask(umask)
        return 0o666 & ~umask
