"""Measured numbers and findings the way JSON can carry them: what the
plugin's responses and `tb-weightnorm report --json` both write.

JSON has no NaN or Infinity. NaN means "not measured" and is written null;
±inf is the string "Infinity" or "-Infinity", which JavaScript's `Number()`
and Python's `float()` read back.

numpy only, so the command-line report needs neither the plugin nor
TensorBoard to write it.
"""

from __future__ import annotations

import math
from typing import TYPE_CHECKING, Any, Dict

import numpy as np

if TYPE_CHECKING:
    from tb_weightnorm.diagnosis import Finding

POSITIVE_INFINITY = "Infinity"
NEGATIVE_INFINITY = "-Infinity"


def json_number(value: float) -> Any:
    """A number as JSON can carry it: NaN (not measured) is None (null),
    ±inf the string "Infinity" / "-Infinity", anything else a float.

    Args:
        value: a Python or numpy number.

    Example:

    >>> [json_number(v) for v in (float("nan"), float("-inf"), 2)]
    [None, '-Infinity', 2.0]
    """
    value = float(value)
    if math.isnan(value):
        return None
    if math.isinf(value):
        return POSITIVE_INFINITY if value > 0 else NEGATIVE_INFINITY
    return value


def finding_object(run: str, finding: "Finding") -> Dict[str, Any]:
    """A finding of `run` as a JSON object: `run` and the finding's fields,
    a NaN or infinite value spelt as `json_number` spells it.

    Args:
        run: the run the finding is about.
        finding: a `diagnosis.Finding` (its numbers may be numpy's).

    Example:

    >>> finding_object("train", finding)["value"]  # doctest: +SKIP
    'Infinity'
    """
    out: Dict[str, Any] = {"run": run}
    for key, value in finding.to_dict().items():
        if isinstance(value, np.generic):  # a Finding built from numpy numbers
            value = value.item()
        out[key] = json_number(value) if isinstance(value, float) else value
    return out
