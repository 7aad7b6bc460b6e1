"""The callback's report: the diagnosis of the steps logged so far (kept in
memory as training logs them), and each new finding written to the
`tb_weightnorm` logger at epoch ends and at the end of training.

Pure Python and numpy: the same rules as the tab and `tb-weightnorm report`
(`tb_weightnorm.diagnosis`), on the host.
"""

from __future__ import annotations

import logging
import time
from typing import List, Optional, Set, Tuple

from tb_weightnorm import diagnosis, schema
from tb_weightnorm.read.history import HistoryBuffer

logger = logging.getLogger("tb_weightnorm")


def _said_key(finding: diagnosis.Finding) -> Tuple:
    """What a finding is said once per: its rule where it is, whatever its steps."""
    return (finding.rule, finding.layer, finding.variable)


class Report:
    """The run's findings, diagnosed when new tables came in, and those
    reported so far.

    Args:
        severity: the least severity reported (`"info"`, `"warning"`,
            `"critical"`); None reports nothing (the findings are kept anyway).
        thresholds: a `tb_weightnorm.diagnosis.Thresholds`; None the defaults.
        run: the run's name in the diagnosis (its log directory).

    Example:

    ```python
    report = Report("warning", None, "logs/run1")
    report.add_tables(names, [(10, table)])  # as steps are logged
    report.say_new_findings()                # at an epoch end
    ```
    """

    def __init__(self, severity: Optional[str], thresholds: Optional[diagnosis.Thresholds], run: str):
        if severity is not None and severity not in diagnosis.SEVERITIES:
            raise ValueError(
                f"report must be one of {', '.join(diagnosis.SEVERITIES)} or None; got {severity!r}"
            )
        self.severity = severity
        self.thresholds = thresholds or diagnosis.Thresholds()
        self.findings: List[diagnosis.Finding] = []
        self._run = run
        self._said: Set[Tuple] = set()
        self._history: Optional[HistoryBuffer] = None
        self._undiagnosed = False  # tables came in since the last diagnosis

    @property
    def nbytes(self) -> int:
        """Bytes of the tables kept for the diagnosis (on the host)."""
        return self._history.nbytes if self._history is not None else 0

    def add_tables(self, names: schema.NormTableNames, tables) -> None:
        """Keeps logged (step, norm table) records for the next diagnosis."""
        if self._history is None:
            self._history = HistoryBuffer(names)
        elif self._history.names is not names:
            self._history = self._history.renamed(names)  # a later fit, other rows
        now = time.time()
        for step, values in tables:
            self._history.append(step, now, values)
            self._undiagnosed = True

    def diagnose(self) -> List[diagnosis.Finding]:
        """The findings of the steps logged so far (diagnosed again only if
        tables came in since)."""
        if self._undiagnosed:
            self._undiagnosed = False
            self.findings = diagnosis.diagnose(self._history.history(self._run), self.thresholds)
        return self.findings

    def mark_said(self, finding: diagnosis.Finding) -> None:
        """Keeps `finding` out of the report: it was said otherwise (as an alert)."""
        self._said.add(_said_key(finding))

    def say_new_findings(self) -> None:
        """Diagnoses the steps logged so far and reports the new findings."""
        self.diagnose()
        if self.severity is None:
            return
        floor = diagnosis.severity_rank(self.severity)
        for finding in self.findings:
            key = _said_key(finding)
            if diagnosis.severity_rank(finding.severity) >= floor and key not in self._said:
                self._said.add(key)
                logger.warning(
                    "Weight Health %s: %s in %s: %s",
                    finding.severity, finding.rule, finding.variable or finding.layer, finding.message,
                )
