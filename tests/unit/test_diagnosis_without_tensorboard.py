"""The diagnosis, the layer view and the text report need numpy only.

A user diagnosing logs in a notebook, a CI job running `tb-weightnorm report`
and the callback all import them; none should pull in TensorBoard, protobuf,
TensorFlow or Keras. A fresh interpreter whose import system refuses those
proves it: checking `sys.modules` in this process could not, since the other
tests have imported them all long before.
"""

import os
import pathlib
import subprocess
import sys
import textwrap

ROOT = pathlib.Path(__file__).resolve().parents[2]

SCRIPT = textwrap.dedent(
    """
    import importlib
    import importlib.abc
    import sys

    BLOCKED = ("tensorboard", "google.protobuf", "tensorflow", "keras")
    attempts = []

    def blocked(name):
        return any(name == b or name.startswith(b + ".") for b in BLOCKED)

    class Refuse(importlib.abc.MetaPathFinder):
        def find_spec(self, name, path=None, target=None):
            if blocked(name):
                attempts.append(name)
                raise ImportError(f"{name} is blocked in this test")
            return None

    sys.meta_path.insert(0, Refuse())

    # The blocker does block: each of them fails to import here.
    for name in BLOCKED + ("tensorboard.plugins.base_plugin", "google.protobuf.message"):
        try:
            importlib.import_module(name)
        except ImportError:
            pass
        else:
            raise SystemExit(f"the blocker let {name} be imported")
    assert not any(blocked(m) for m in sys.modules), sorted(m for m in sys.modules if blocked(m))
    attempts.clear()

    import numpy as np

    from tb_weightnorm import diagnosis
    from tb_weightnorm.cli import report
    from tb_weightnorm.read import layer_view
    from tb_weightnorm.read.history import NormHistory

    # Two layers over 20 logged steps; the hidden layer's gradient turns NaN
    # at step 15.
    stats = ("weight/l2", "weight/nan_count", "gradient/l2", "gradient/nan_count", "update/l2", "update/ratio")
    variables = ("hidden/kernel", "hidden/bias", "out/kernel", "(global)")
    layers = ("hidden", "hidden", "out", "(model)")
    values = np.zeros((20, len(variables), len(stats)), np.float32)
    values[:, :, 0] = [3.0, 1.0, 2.0, 3.7]
    values[:, :, 2] = [0.3, 0.1, 0.2, 0.37]
    values[:, :, 4] = [3e-3, 1e-3, 2e-3, np.nan]
    values[:, :, 5] = 1e-3
    values[15:, 0, 3] = 4.0
    history = NormHistory(
        run="train", steps=np.arange(0, 200, 10), wall_times=np.zeros(20), variables=variables,
        layers=layers, stats=stats, values=values,
    )

    findings = diagnosis.diagnose(history, diagnosis.Thresholds().replace(sustain=3))
    assert [(f.rule, f.severity, f.layer, f.first_step) for f in findings] == [
        ("nonfinite", "critical", "hidden", 150)
    ], findings
    assert [g.layer for g in layer_view.run_layers(history)] == ["hidden", "out"]
    text = report.format_run(history, findings)
    assert "nonfinite" in text and "hidden" in text, text
    assert '"rule": "nonfinite"' in report.findings_json([("train", f) for f in findings])

    assert attempts == [], f"tried to import {attempts}"
    assert not any(blocked(m) for m in sys.modules), sorted(m for m in sys.modules if blocked(m))
    print("diagnosed without", ", ".join(BLOCKED))
    """
)


def test_diagnosis_imports_and_runs_without_tensorboard_protobuf_tensorflow_or_keras():
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join([str(ROOT)] + [p for p in [env.get("PYTHONPATH")] if p])
    result = subprocess.run(
        [sys.executable, "-c", SCRIPT], env=env, cwd=ROOT, capture_output=True, text=True, timeout=120
    )
    assert result.returncode == 0, result.stdout + result.stderr
    assert "diagnosed without tensorboard, google.protobuf, tensorflow, keras" in result.stdout
