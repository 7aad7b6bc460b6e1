"""Alerts: which findings of the diagnosis stop training, and what is said
when one does.

Pure Python (no TensorFlow): the callback decides when to look, this module
what counts and how it reads.
"""

from __future__ import annotations

import dataclasses
from typing import Collection, Dict, Iterable, Optional, Sequence, Tuple, Union

from tb_weightnorm import diagnosis
from tb_weightnorm.diagnosis import Finding

# What the callback does on an alert.
ON_ALERT = ("stop", "raise")

StopOn = Union[str, Sequence[str]]


@dataclasses.dataclass(frozen=True)
class AlertPolicy:
    """Which findings raise an alert.

    Attributes:
        floors: the least severity that alerts, by rule (every rule when
            built from a severity).
    """

    floors: Tuple[Tuple[str, str], ...]

    @classmethod
    def parse(cls, stop_on: StopOn) -> "AlertPolicy":
        """A policy from `stop_on`: a severity (`"critical"`: every finding at
        least that severe), or a list of rules, each optionally with the least
        severity that counts (`["nonfinite", "exploding_gradients:critical"]`).

        Raises:
            ValueError: for an unknown severity or rule, with the known ones.
        """
        severities = ", ".join(diagnosis.SEVERITIES)
        if isinstance(stop_on, str):
            if stop_on not in diagnosis.SEVERITIES:
                raise ValueError(
                    f"stop_on must be a severity ({severities}) or a list of rules "
                    f"({', '.join(diagnosis.RULES)}), each optionally as 'rule:severity'; got {stop_on!r}"
                )
            return cls(tuple((rule, stop_on) for rule in diagnosis.RULES))
        try:
            items = list(stop_on)
        except TypeError:
            items = []
        if not items:
            raise ValueError(
                f"stop_on must be a severity ({severities}) or a non-empty list of rules; got {stop_on!r}"
            )
        floors: Dict[str, str] = {}
        for item in items:
            rule, _, severity = str(item).partition(":")
            if rule not in diagnosis.RULES:
                raise ValueError(f"stop_on names an unknown rule {rule!r}; the rules are {', '.join(diagnosis.RULES)}")
            severity = severity or diagnosis.SEVERITIES[0]
            if severity not in diagnosis.SEVERITIES:
                raise ValueError(f"stop_on gives {item!r} an unknown severity; the severities are {severities}")
            floors[rule] = severity
        return cls(tuple(floors.items()))

    def counts(self, finding: Finding) -> bool:
        """Whether `finding` is of a rule and severity this policy alerts on."""
        floor = dict(self.floors).get(finding.rule)
        return floor is not None and diagnosis.severity_rank(finding.severity) >= diagnosis.severity_rank(floor)

    def new_alert(self, findings: Iterable[Finding], alerted: Collection[Tuple]) -> Optional[Finding]:
        """The first finding (findings come most severe first) that counts,
        still holds at the last logged step, and was not alerted on before."""
        for finding in findings:
            if finding.ongoing and self.counts(finding) and key(finding) not in alerted:
                return finding
        return None

    def holds(self, findings: Iterable[Finding]) -> bool:
        """Whether any finding that counts holds at the last logged step."""
        return any(f.ongoing and self.counts(f) for f in findings)


def key(finding: Finding) -> Tuple:
    """What identifies one finding across diagnoses of a growing history."""
    return (finding.rule, finding.layer, finding.variable, finding.first_step)


@dataclasses.dataclass(frozen=True)
class Alert:
    """An alert the callback raised.

    Attributes:
        finding: the finding that raised it.
        step: the logged step at which it was found.
        healthy_step: the step whose weights were saved, the last logged step
            without a finding that alerts; None if none was kept.
        weights_path: where those weights were saved (Keras `.weights.h5`,
            for `model.load_weights`); None if none were kept.
        action: `"stop"` or `"raise"`.
    """

    finding: Finding
    step: int
    healthy_step: Optional[int]
    weights_path: Optional[str]
    action: str

    def message(self) -> str:
        f = self.finding
        where = f"layer {f.layer} ({f.variable})" if f.variable else f"layer {f.layer}"
        if f.layer == "(model)":
            where = "the whole model"
        since = f", since step {f.first_step}" if f.first_step != self.step else ""
        if self.weights_path is not None:
            saved = (
                f"Saved the weights of step {self.healthy_step}, the last logged step without such a "
                f"finding, to {self.weights_path} (model.load_weights reads them)."
            )
        else:
            saved = "No healthy weights were kept: no logged step before it was free of such findings."
        action = "Stopping training." if self.action == "stop" else "Raising WeightHealthAlert."
        return (
            f"Weight Health alert at step {self.step}: {f.severity} {f.rule} in {where}{since}. "
            f"{f.message} {saved} {action}"
        )


class WeightHealthAlert(RuntimeError):
    """Raised by `WeightHealthCallback(stop_on=..., on_alert="raise")` when a
    finding it watches for appears; `alert` says which and where the last
    healthy weights went."""

    def __init__(self, alert: Alert):
        super().__init__(alert.message())
        self.alert = alert
