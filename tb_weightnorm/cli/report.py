"""The diagnosis of runs as text for a terminal, and as JSON.

Pure formatting: functions of a `NormHistory` and its findings that return
strings. Reading logs, diagnosing and printing are the command line's job
(`tb_weightnorm.cli`).
"""

from __future__ import annotations

import dataclasses
import json
import math
import textwrap
from typing import Dict, Iterable, List, Optional, Sequence, Tuple

import numpy as np

from tb_weightnorm import schema
from tb_weightnorm.diagnosis import Finding, severity_rank, sort_findings
from tb_weightnorm.read import json_numbers, layer_view
from tb_weightnorm.read.history import NormHistory

# Longest line of the text report: fits a terminal, a CI log and a code review.
WIDTH = 100
_LAYER_WIDTH = 24
_INDENT = " " * 4


@dataclasses.dataclass(frozen=True)
class LayerSummary:
    """One layer at a run's last logged step, as the report's table shows it.

    NaN where the run did not measure the stat (no gradient, stat not logged).
    `nonfinite` counts the NaN and Inf values in the layer's weights and
    gradients: the norms are taken over the finite values only, so a layer
    gone all NaN shows norms of 0 and needs this beside them.
    """

    layer: str
    variables: int
    weight_l2: float
    gradient_l2: float
    max_update_ratio: float
    max_dead_fraction: float
    nonfinite: float
    status: str


def format_number(value: Optional[float]) -> str:
    """A measured value in at most 9 characters: `-` when not measured (NaN or
    None), `inf` / `-inf`, else 3 significant digits.

    Example:

    >>> [format_number(v) for v in (float("nan"), float("inf"), 0.000123, 42.0)]
    ['-', 'inf', '0.000123', '42']
    """
    if value is None:
        return "-"
    value = float(value)
    if math.isnan(value):
        return "-"
    if math.isinf(value):
        return "inf" if value > 0 else "-inf"
    return f"{value:.3g}"


def shorten(text: str, width: int) -> str:
    """`text` cut to `width` characters by dropping its middle: the model
    prefix stays, and so does the tail that tells layers apart, from a `/` on
    where there is one, so it reads as whole names.

    Example:

    >>> shorten("functional/encoder/block_12/attention/query_dense", 30)
    'functional/enco.../query_dense'
    """
    if len(text) <= width:
        return text
    if width <= 3:
        return text[:width]
    budget = width - 3
    tail = text[len(text) - budget * 2 // 3 :] if budget >= 3 else ""
    slash = tail.find("/")
    if slash > 0:
        tail = tail[slash:]
    return text[: budget - len(tail)] + "..." + tail


def layer_summaries(history: NormHistory, findings: Sequence[Finding]) -> List[LayerSummary]:
    """The layers of a run in model order, at its last logged step, without the
    `(global)` row.

    A layer's weight and gradient l2 are those of all its variables together
    (square root of the sum of their squares); its update ratio and dead
    fraction are the largest of its variables'; `nonfinite` sums their NaN and
    Inf counts in weights and gradients. `status` is the most severe
    finding about the layer; without one, `nan/inf` if the layer holds NaN
    or Inf, else `ok`.

    Args:
        history: the run's logged norm tables (at least one step).
        findings: the run's findings.

    Example:

    >>> [s.layer for s in layer_summaries(history, diagnose(history))]  # doctest: +SKIP
    ['hidden', 'out']
    """
    groups = layer_view.run_layers(history)
    worst: Dict[str, str] = {}
    for finding in findings:
        current = worst.get(finding.layer)
        if current is None or severity_rank(finding.severity) > severity_rank(current):
            worst[finding.layer] = finding.severity
    weight_l2 = _at_last_step(history, "weight/l2", groups, layer_view.NORM)
    gradient_l2 = _at_last_step(history, "gradient/l2", groups, layer_view.NORM)
    update_ratio = _at_last_step(history, "update/ratio", groups, layer_view.MAX)
    dead_fraction = _at_last_step(history, "gradient/dead_fraction", groups, layer_view.MAX)
    counts = np.array([_at_last_step(history, s, groups, layer_view.SUM) for s in _NONFINITE_STATS])
    # NaN only where none of the counts was measured.
    nonfinite = np.where(np.isnan(counts).all(axis=0), math.nan, np.nansum(counts, axis=0))
    summaries = []
    for i, group in enumerate(groups):
        # The nonfinite rule names only the layer where NaN first appeared;
        # the layers it spread to are not "ok".
        clean = "nan/inf" if nonfinite[i] > 0 else "ok"
        summaries.append(
            LayerSummary(
                layer=group.layer,
                variables=len(group.rows),
                weight_l2=float(weight_l2[i]),
                gradient_l2=float(gradient_l2[i]),
                max_update_ratio=float(update_ratio[i]),
                max_dead_fraction=float(dead_fraction[i]),
                nonfinite=float(nonfinite[i]),
                status=worst.get(group.layer, clean),
            )
        )
    return summaries


_NONFINITE_STATS = tuple(
    schema.stat_name(kind, count)
    for kind in ("weight", "gradient")
    for count in ("nan_count", "inf_count")
)


def _at_last_step(
    history: NormHistory, stat: str, groups: Sequence[layer_view.LayerRows], rule: str
) -> np.ndarray:
    """Each layer's `stat` at the last logged step, its rows combined by
    `rule`; NaN where the run did not measure it."""
    if stat not in history.stats or len(history.steps) == 0:
        return np.full(len(groups), np.nan)
    last = history.values[-1:, :, history.stats.index(stat)]
    return layer_view.combine(last, [group.rows for group in groups], rule)[0]


def format_run(history: NormHistory, findings: Sequence[Finding]) -> str:
    """The text report of one run: a header, its findings most severe first,
    and a table of its layers at the last logged step. No trailing newline;
    every line at most `WIDTH` characters.

    Args:
        history: the run's logged norm tables.
        findings: the run's findings (in any order).

    Example:

    ```python
    for history in tb_weightnorm.read.export.histories("logs"):
        print(format_run(history, diagnose(history)), end="\\n\\n")
    ```
    """
    findings = sort_findings(findings)
    lines = _header(history)
    lines.append("")
    if findings:
        lines.append(f"Findings ({len(findings)}, most severe first):")
        for finding in findings:
            lines.extend(_finding_lines(finding))
    else:
        lines.append("Findings: none.")
    if len(history.steps):
        lines.append("")
        lines.extend(_layer_table(history, findings))
    return "\n".join(lines)


def _header(history: NormHistory) -> List[str]:
    lines = [shorten(f"Run {history.run}", WIDTH)]
    steps = history.steps
    if len(steps) == 0:
        lines.append(_INDENT + "no steps logged")
        return lines
    logged = f"{len(steps)} logged step{'s' if len(steps) != 1 else ''}"
    span = f"step {steps[0]}" if len(steps) == 1 else f"steps {steps[0]}-{steps[-1]}"
    detail = f"{logged}, {span}"
    global_row = history.global_index()
    gradient = history.column("gradient/l2")
    if global_row is not None and gradient is not None:
        detail += (
            f"; global gradient l2 at step {steps[-1]}: {format_number(gradient[-1, global_row])}"
        )
    lines.append(_INDENT + detail)
    if history.gradient_note:
        lines.extend(_wrap(f"gradients: {history.gradient_note}", _INDENT))
    return lines


def _finding_lines(finding: Finding) -> List[str]:
    where = finding.layer
    if finding.variable:
        # A Keras variable path names its layer (`sequential/hidden/kernel`);
        # say the layer only where it does not.
        named = f"/{finding.layer}/" in f"/{finding.variable}"
        where = finding.variable if named else f"{finding.layer}: {finding.variable}"
    head = f"  {finding.severity.upper():<8} {finding.rule:<20} "
    span = (
        f"step {finding.first_step}"
        if finding.first_step == finding.last_step
        else f"steps {finding.first_step}-{finding.last_step}"
    )
    facts = (
        f"{span}{', ongoing' if finding.ongoing else ''}; value {format_number(finding.value)}"
        f" vs threshold {format_number(finding.threshold)}"
    )
    return [
        head + shorten(where, WIDTH - len(head)),
        *_wrap(facts, _INDENT * 2),
        *_wrap(finding.message, _INDENT * 2),
    ]


def _wrap(text: str, indent: str) -> List[str]:
    # break_long_words (the default) keeps even a long path within WIDTH.
    return textwrap.wrap(text, WIDTH, initial_indent=indent, subsequent_indent=indent) or [indent]


_COLUMNS: Tuple[Tuple[str, int], ...] = (
    ("layer", -_LAYER_WIDTH),  # negative: left-aligned
    ("vars", 4),
    ("weight l2", 9),
    ("grad l2", 9),
    ("max upd ratio", 13),
    ("max dead", 8),
    ("nonfinite", 9),
    ("status", -8),
)


def _table_row(cells: Sequence[str]) -> str:
    parts = [c.ljust(-w) if w < 0 else c.rjust(w) for c, (_, w) in zip(cells, _COLUMNS)]
    return ("  " + "  ".join(parts)).rstrip()


def _layer_table(history: NormHistory, findings: Sequence[Finding]) -> List[str]:
    summaries = layer_summaries(history, findings)
    lines = [f"Layers at step {history.steps[-1]}:", _table_row([name for name, _ in _COLUMNS])]
    for s in summaries:
        lines.append(
            _table_row(
                [
                    shorten(s.layer, _LAYER_WIDTH),
                    str(s.variables),
                    format_number(s.weight_l2),
                    format_number(s.gradient_l2),
                    format_number(s.max_update_ratio),
                    format_number(s.max_dead_fraction),
                    format_number(s.nonfinite),
                    s.status,
                ]
            )
        )
    if not summaries:
        lines.append("  (no layers logged)")
    return lines


def format_verdict(findings: Sequence[Finding], runs: int, fail_on: str, failing: int) -> str:
    """The last line of the text report: findings by severity over all runs, and
    how many are at or above `fail_on` (those make the exit status 1).

    Args:
        findings: the findings of every run reported.
        runs: how many runs were reported.
        fail_on: the severity that fails the command.
        failing: how many findings are at or above `fail_on`.

    Example:

    >>> format_verdict([], runs=2, fail_on="critical", failing=0)
    '2 runs: 0 critical, 0 warning, 0 info. None at or above critical.'
    """
    counts = ", ".join(
        f"{sum(f.severity == s for f in findings)} {s}" for s in ("critical", "warning", "info")
    )
    verdict = (
        f"{failing} at or above {fail_on}: failing."
        if failing
        else f"None at or above {fail_on}."
    )
    return f"{runs} run{'s' if runs != 1 else ''}: {counts}. {verdict}"


def findings_json(findings: Iterable[Tuple[str, Finding]]) -> str:
    """Findings of several runs as one JSON list of objects: the fields of
    `Finding` and `run`.

    Strictly valid JSON: a NaN value is `null`, an infinite one the string
    `"Infinity"` or `"-Infinity"`.

    Args:
        findings: (run, finding) pairs, in the order to list them.

    Example:

    >>> findings_json([])
    '[]'
    """
    objects = [json_numbers.finding_object(run, f) for run, f in findings]
    return json.dumps(objects, indent=2, allow_nan=False)
