"""The callback's alerts: it looks after each logged step, keeps the weights
of the last healthy one, and on an alert saves them and stops training.

What counts as an alert and how it reads are `writer.alerts`' (pure Python);
the weights' copy is `writer.healthy_weights`'.
"""

from __future__ import annotations

import logging
import os
from typing import Callable, Optional, Sequence, Set, Tuple, Union

from tb_weightnorm import diagnosis
from tb_weightnorm.writer import alerts
from tb_weightnorm.writer.alerts import Alert, AlertPolicy
from tb_weightnorm.writer.healthy_weights import HealthyWeights
from tb_weightnorm.writer.logged_steps import LoggedSteps
from tb_weightnorm.writer.report import Report

logger = logging.getLogger("tb_weightnorm")


class AlertWatch:
    """Raises an alert when the diagnosis at a logged step finds a problem
    that `stop_on` counts and that still holds at that step.

    Args:
        stop_on: as `WeightHealthCallback` takes it; None never alerts.
        on_alert: `"stop"` or `"raise"`.
        healthy_weights_path: where an alert saves the last healthy weights;
            None: `LOG_DIR/train/tb_weightnorm/last_healthy.weights.h5`.
        log_dir: the run's log directory.

    Example:

    ```python
    watch = AlertWatch("critical", "stop", None, "logs/run1")
    watch.train_began(model, steps)
    watch.logged(step)                          # a step's table was written
    alert = watch.look(model, steps, report)   # after it; None if all is well
    ```
    """

    def __init__(
        self,
        stop_on: Optional[Union[str, Sequence[str]]],
        on_alert: str,
        healthy_weights_path: Optional[str],
        log_dir: str,
    ):
        self._policy = AlertPolicy.parse(stop_on) if stop_on is not None else None
        if on_alert not in alerts.ON_ALERT:
            raise ValueError(f"on_alert must be one of {', '.join(alerts.ON_ALERT)}; got {on_alert!r}")
        self.on_alert = on_alert
        if healthy_weights_path is None:
            healthy_weights_path = os.path.join(log_dir, "train", "tb_weightnorm", "last_healthy.weights.h5")
        healthy_weights_path = os.fspath(healthy_weights_path)
        if not healthy_weights_path.endswith(".weights.h5"):
            raise ValueError(
                "healthy_weights_path must end in '.weights.h5' (Keras' format for model.load_weights); "
                f"got {healthy_weights_path!r}"
            )
        self.healthy_weights_path = healthy_weights_path
        self.alert: Optional[Alert] = None
        # Whether an alert stopped training mid-epoch (the epoch's weights are not the model's).
        self.stopped_mid_epoch = False
        self._alerted: Set[Tuple] = set()
        self._healthy: Optional[HealthyWeights] = None
        self._unwatched_step: Optional[int] = None  # the last logged step, until looked at

    @property
    def healthy_nbytes(self) -> int:
        """Bytes of the healthy weights' copy, on the model's device."""
        return self._healthy.nbytes if self._healthy is not None else 0

    def train_began(self, model, steps: LoggedSteps) -> None:
        self.alert = None
        self.stopped_mid_epoch = False
        self._unwatched_step = None
        self._healthy = None
        if self._policy is not None and steps.chief:
            self._healthy = HealthyWeights()
            if model.weights:
                # Until a logged step is found healthy, the weights the fit started from.
                self._healthy.keep(model, steps.step(model))

    def logged(self, step: int) -> None:
        """Says that `step`'s norm table came in: the next look diagnoses it."""
        self._unwatched_step = step

    def look(self, model, steps: LoggedSteps, report: Report) -> Optional[Alert]:
        """Diagnoses the run after new logged steps and returns the alert for
        a new finding that counts (having saved the healthy weights and, for
        `"stop"`, stopped training); otherwise keeps the weights of the last
        logged step as the healthy ones and returns None."""
        last_logged, self._unwatched_step = self._unwatched_step, None
        if self._policy is None or last_logged is None:
            return None
        findings = report.diagnose()
        finding = self._policy.new_alert(findings, self._alerted)
        if finding is not None:
            return self._raise(finding, last_logged, model, report, steps.flush)
        if not self._policy.holds(findings) and last_logged == steps.step(model):
            # With steps_per_execution > 1, only a logged step that ends an
            # execution has its weights still in the model.
            self._healthy.keep(model, last_logged)
        return None

    def _raise(
        self, finding: diagnosis.Finding, step: int, model, report: Report, flush: Callable[[], None]
    ) -> Alert:
        self._alerted.add(alerts.key(finding))
        # Said once, as an alert, not again by the epoch's report.
        report.mark_said(finding)
        flush()
        healthy = self._healthy
        path = None
        if healthy is not None and healthy.step is not None:
            healthy.save(model, self.healthy_weights_path)
            path = self.healthy_weights_path
        self.alert = Alert(finding, step, healthy.step if path is not None else None, path, self.on_alert)
        logger.error("%s", self.alert.message())
        if self.on_alert == "stop":
            model.stop_training = True
            self.stopped_mid_epoch = True
        return self.alert

    def let_go(self) -> None:
        """Frees the healthy weights' copy (at the end of a fit)."""
        self._healthy = None
