"""The `tb-weightnorm` command line.

    tb-weightnorm report LOGDIR [--json] [--fail-on SEVERITY] [--threshold NAME=VALUE] [--run GLOB]
    tb-weightnorm export LOGDIR [--csv FILE] [--histograms FILE] [--findings FILE] [--layout wide|long]
                                [--threshold NAME=VALUE] [--run GLOB]

Exit status of `report`: 0 when no finding is at or above `--fail-on`, 1 when
one is (so a CI step can gate a training run on it). Of `export`: 0 once its
files are written. Both: 2 for bad arguments, a log directory without Weight
Health data, or (`export`) a file that cannot be written.
"""

from __future__ import annotations

import argparse
import math
import os
import sys
from typing import Callable, List, Optional, Sequence, Tuple

from tb_weightnorm import diagnosis
from tb_weightnorm.cli import report

EXIT_OK, EXIT_FINDINGS, EXIT_USAGE = 0, 1, 2

_OFF = ("none", "off")


class UsageError(Exception):
    """Bad input from the user: printed as one line, exit status 2."""


def build_parser() -> argparse.ArgumentParser:
    """The parser of every subcommand; each sets `handler(args) -> exit status`.

    Example:

    >>> build_parser().parse_args(["report", "logs", "--fail-on", "warning"]).fail_on
    'warning'
    """
    parser = argparse.ArgumentParser(
        prog="tb-weightnorm",
        description="Weight and gradient health of TensorFlow/Keras training runs.",
    )
    subcommands = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)
    _add_report(subcommands)
    _add_export(subcommands)
    return parser


def _add_report(subcommands) -> None:
    sub = subcommands.add_parser(
        "report",
        help="print the diagnosis of every run under a log directory",
        description=(
            "Prints, per run, the findings of the diagnosis (most severe first) and a "
            "summary of every layer at the last logged step."
        ),
        epilog=(
            "exit status: 0 if no finding is at or above --fail-on, 1 if one is, "
            "2 for bad arguments or a log directory without Weight Health data"
        ),
    )
    sub.add_argument("logdir", metavar="LOGDIR", help="the TensorBoard log directory (searched recursively)")
    sub.add_argument(
        "--json", action="store_true", dest="as_json",
        help="print the findings of all runs as one JSON list instead",
    )
    sub.add_argument(
        "--fail-on", choices=diagnosis.SEVERITIES, default="critical",
        help="exit 1 when a finding is at least this severe (default: critical)",
    )
    _add_threshold_and_run(sub)
    sub.set_defaults(handler=_report)


def _add_export(subcommands) -> None:
    from tb_weightnorm.read.export import LAYOUTS

    sub = subcommands.add_parser(
        "export",
        help="write the norm tables, histograms or findings of every run as CSV",
        description=(
            "Writes what tb_weightnorm.load(LOGDIR) reads (norm tables), the weight and "
            "gradient histograms, or the findings of the diagnosis, as CSV files (UTF-8). A file "
            "is written in full or not at all."
        ),
        epilog="exit status: 0 once the files are written, 2 for bad arguments, a log directory "
        "without the data asked for, or a file that cannot be written",
    )
    sub.add_argument("logdir", metavar="LOGDIR", help="the TensorBoard log directory (searched recursively)")
    sub.add_argument(
        "--csv", "--norms", dest="norms", metavar="FILE",
        help="write the norm tables (weight, gradient and update stats per run, step and variable) "
        "to FILE; - for standard output",
    )
    sub.add_argument(
        "--histograms", metavar="FILE",
        help="write the weight and gradient histograms to FILE, one row per bucket "
        "(lower, upper, count) and a row each for the NaN, -Inf and +Inf counts",
    )
    sub.add_argument("--findings", metavar="FILE", help="write the findings of the diagnosis to FILE, one row per finding")
    sub.add_argument(
        "--layout", choices=LAYOUTS, default="long",
        help="of the norm tables: long, one row per run, step, variable and stat, as "
        "tb_weightnorm.load returns them (default); wide, one row per run, step and variable "
        "with a column per stat",
    )
    _add_threshold_and_run(sub, threshold_help=" (of --findings)")
    sub.set_defaults(handler=_export)


def _add_threshold_and_run(sub, threshold_help: str = "") -> None:
    sub.add_argument(
        "--threshold", action="append", default=[], type=parse_threshold, metavar="NAME=VALUE",
        help=(
            f"override a diagnosis threshold{threshold_help}, e.g. sustain=8 or "
            "update_ratio_high.warning=0.05 (VALUE none switches a level off); repeatable"
        ),
    )
    sub.add_argument(
        "--run", action="append", default=[], dest="runs", metavar="GLOB",
        help="only runs whose name matches this glob pattern, e.g. 'baseline*'; repeatable",
    )


def parse_threshold(text: str) -> Tuple[str, Optional[float]]:
    """`NAME=VALUE` of `--threshold`, checked against `diagnosis.Thresholds`.

    Raises:
        argparse.ArgumentTypeError: naming what is wrong and what would be right.

    Example:

    >>> parse_threshold("update_ratio_high.warning=0.05")
    ('update_ratio_high.warning', 0.05)
    """
    name, equals, raw = text.partition("=")
    name, raw = name.strip(), raw.strip()
    if not equals or not name or not raw:
        raise argparse.ArgumentTypeError(
            f"{text!r} is not NAME=VALUE; write e.g. sustain=8 or dead_fraction.warning=0.3"
        )
    value: Optional[float] = None
    if raw.lower() not in _OFF:
        try:
            value = float(raw)
        except ValueError:
            raise argparse.ArgumentTypeError(f"{name}: {raw!r} is not a number") from None
        if math.isnan(value):
            raise argparse.ArgumentTypeError(f"{name}: a threshold cannot be NaN")
        if value.is_integer() and abs(value) < 2**53:
            value = int(value)
    try:
        changed = diagnosis.Thresholds().replace(**{name: value})
    except (TypeError, ValueError, OverflowError) as exc:
        raise argparse.ArgumentTypeError(_threshold_problem(name, exc)) from None
    # Thresholds casts a plain number to its field's type: 8.5 would become 8.
    if "." not in name and getattr(changed, name) != value:
        raise argparse.ArgumentTypeError(f"{name} takes a whole number, not {raw}")
    return name, value


def _threshold_problem(name: str, exc: Exception) -> str:
    if isinstance(exc, TypeError):  # None given to a plain number
        return f"{name} takes a number; only the levels of a band can be switched off"
    if isinstance(exc, OverflowError):  # inf given to a whole number
        return f"{name} takes a finite whole number"
    return str(exc)


def main(argv: Optional[Sequence[str]] = None) -> int:
    """Runs the command line; returns its exit status.

    Args:
        argv: the arguments after the program name; `sys.argv[1:]` when None.

    Example:

    ```python
    status = main(["report", "logs", "--fail-on", "warning"])
    ```
    """
    parser = build_parser()
    try:
        args = parser.parse_args(argv)
    except SystemExit as exc:  # argparse exits for --help and for usage errors
        return exc.code if isinstance(exc.code, int) else (EXIT_OK if exc.code is None else EXIT_USAGE)
    handler: Callable[[argparse.Namespace], int] = args.handler
    # Messages quote layer names, paths and say "steps 3–9": never fail on a
    # terminal or pipe that cannot encode them.
    for stream in (sys.stdout, sys.stderr):
        if hasattr(stream, "reconfigure"):
            stream.reconfigure(errors="backslashreplace")
    # Reading logs loads TensorFlow (TensorBoard reads files through it);
    # quiet its C++ start-up logging, which would bury our error messages.
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    try:
        return handler(args)
    except UsageError as exc:
        print(f"tb-weightnorm {args.command}: {exc}", file=sys.stderr)
        return EXIT_USAGE
    except BrokenPipeError:
        # The reader (`| head`) went away; say nothing more and don't let
        # Python complain while flushing stdout at exit.
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return EXIT_OK
    except KeyboardInterrupt:
        return 130


def _report(args: argparse.Namespace) -> int:
    thresholds = diagnosis.Thresholds().replace(**dict(args.threshold))
    results = [(h, diagnosis.diagnose(h, thresholds)) for h in _histories(args.logdir, args.runs)]
    every = [(h.run, f) for h, findings in results for f in findings]
    floor = diagnosis.severity_rank(args.fail_on)
    failing = sum(diagnosis.severity_rank(f.severity) >= floor for _, f in every)
    if args.as_json:
        print(report.findings_json(every))
    else:
        for history, findings in results:
            print(report.format_run(history, findings), end="\n\n")
        print(report.format_verdict([f for _, f in every], len(results), args.fail_on, failing))
    return EXIT_FINDINGS if failing else EXIT_OK


def _export(args: argparse.Namespace) -> int:
    # Imported here: it loads TensorBoard (and TensorFlow), which --help and
    # argument errors do not need.
    from tb_weightnorm.read import csv_export

    if not (args.norms or args.histograms or args.findings):
        raise UsageError(
            "say what to export: --csv FILE (the norm tables), --histograms FILE, --findings FILE "
            "(FILE - for standard output)"
        )
    try:
        csv_export.export_csv(
            args.logdir, norms=args.norms, histograms=args.histograms, findings=args.findings,
            runs=args.runs, layout=args.layout,
            thresholds=diagnosis.Thresholds().replace(**dict(args.threshold)),
        )
    except BrokenPipeError:
        raise
    except (ValueError, OSError) as exc:  # NoWeightHealthData is a ValueError
        raise UsageError(str(exc)) from None
    return EXIT_OK


def _histories(logdir: str, patterns: Sequence[str]) -> List:
    """The norm histories of the runs under `logdir` that match `patterns`."""
    # Imported here: it loads TensorBoard (and TensorFlow), which --help and
    # argument errors do not need.
    from tb_weightnorm.read import export

    try:
        logs = export.LogDir(logdir)
        found = [h for h in map(logs.norms, logs.runs(patterns, required=True)) if h is not None]
    except (FileNotFoundError, export.NoWeightHealthData) as exc:
        raise UsageError(str(exc)) from None
    except OSError as exc:
        raise UsageError(f"cannot read {logdir!r}: {exc}") from None
    if not found:
        raise UsageError(f"No readable Weight Health data under {logdir!r} (see the warnings above).")
    return found
