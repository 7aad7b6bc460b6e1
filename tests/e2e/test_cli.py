"""`tb-weightnorm report`: the real console script on runs trained here, and
the pure formatting of report.py on hand-built histories."""

import json
import math
import os
import subprocess
import sys
import sysconfig

import keras
import numpy as np
import pytest

import tb_weightnorm
from tb_weightnorm import cli, schema
from tb_weightnorm.cli import report
from tb_weightnorm.diagnosis import Finding
from tb_weightnorm.read import layer_view
from tb_weightnorm.read.history import NormHistory

FIELDS = {"run", "rule", "severity", "layer", "variable", "first_step", "last_step", "value", "threshold", "message"}
HEALTHY, BROKEN = "healthy/train", "nan/train"
# The optimizer update after which a NaN is written into the kernel of "hidden".
NAN_AFTER_STEP = 30


class _NaNInto(keras.callbacks.Callback):
    """Writes one NaN into a layer's kernel after a given optimizer step."""

    def __init__(self, layer, step):
        super().__init__()
        self.layer, self.step = layer, step

    def on_train_batch_end(self, batch, logs=None):
        # `batch` restarts every epoch; the optimizer's count does not.
        if int(self.model.optimizer.iterations.numpy()) == self.step:
            kernel = self.model.get_layer(self.layer).kernel
            value = kernel.numpy()
            value[0, 0] = np.nan
            kernel.assign(value)


def _classifier(activation="relu"):
    keras.utils.set_random_seed(1)
    model = keras.Sequential(
        [
            keras.Input((8,)),
            keras.layers.Dense(16, activation=activation, name="hidden"),
            keras.layers.Dense(2, name="out"),
        ]
    )
    model.compile(
        optimizer=keras.optimizers.Adam(1e-3),
        loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True),
    )
    return model


@pytest.fixture(scope="module")
def logdir(tmp_path_factory):
    """Two runs: `healthy` (100 steps) and `nan` (60 steps, NaN after step 30),
    both logged every 2 steps."""
    root = tmp_path_factory.mktemp("report_logs")
    rng = np.random.default_rng(0)
    x = rng.normal(size=(640, 8)).astype("float32")
    y = (x @ rng.normal(size=(8,)) > 0).astype("int32")  # linearly separable
    _classifier().fit(
        x, y, batch_size=32, epochs=5, verbose=0,
        callbacks=[tb_weightnorm.WeightHealthCallback(root / "healthy", every_n_steps=2)],
    )
    # Linear, so the NaN reaches "out" on every CPU: through a ReLU it may
    # not (relu(NaN) is NaN or 0 depending on the kernel).
    _classifier(activation=None).fit(
        x, y, batch_size=32, epochs=3, verbose=0,
        callbacks=[
            tb_weightnorm.WeightHealthCallback(root / "nan", every_n_steps=2),
            _NaNInto("hidden", NAN_AFTER_STEP),
        ],
    )
    return root


def _run(*args, module=False):
    """The installed console script (or `python -m tb_weightnorm`) in a subprocess."""
    if module:
        command = [sys.executable, "-m", "tb_weightnorm"]
    else:
        command = [os.path.join(sysconfig.get_path("scripts"), "tb-weightnorm")]
    result = subprocess.run(
        command + [str(a) for a in args], capture_output=True, text=True, timeout=300,
        env={**os.environ, "TF_CPP_MIN_LOG_LEVEL": "2"},
    )
    assert "Traceback" not in result.stderr, result.stderr
    return result


# -- the console script on real runs --------------------------------------------


def test_text_report_names_runs_findings_and_layers(logdir):
    result = _run("report", logdir)
    assert result.returncode == 1, result.stderr
    out = result.stdout
    assert f"Run {HEALTHY}" in out and f"Run {BROKEN}" in out
    broken = out[out.index(f"Run {BROKEN}"):]
    assert "CRITICAL nonfinite" in broken
    assert f"steps {NAN_AFTER_STEP + 1}-59, ongoing" in broken
    assert "/hidden/kernel" in broken
    # Both runs have a layer table, with the (global) row left out of it.
    assert out.count("Layers at step") == 2
    table = [line.split() for line in broken[broken.index("Layers at step"):].splitlines()[2:4]]
    assert [row[0] for row in table] == ["hidden", "out"]
    # The finding names where NaN appeared first; the table shows where it spread.
    assert [row[-1] for row in table] == ["critical", "nan/inf"]
    assert schema.GLOBAL_ROW not in out
    assert "global gradient l2 at step 99" in out
    assert "1 at or above critical: failing." in out
    assert max(len(line) for line in out.splitlines()) <= report.WIDTH


def test_json_lists_every_finding_with_its_run(logdir):
    result = _run("report", logdir, "--json")
    assert result.returncode == 1, result.stderr
    findings = json.loads(result.stdout, parse_constant=_no_bare_constants)
    assert isinstance(findings, list) and findings
    for finding in findings:
        assert FIELDS <= set(finding), finding
    nonfinite = [f for f in findings if f["rule"] == "nonfinite"]
    assert len(nonfinite) == 1
    assert nonfinite[0]["run"] == BROKEN
    assert nonfinite[0]["severity"] == "critical"
    assert nonfinite[0]["layer"] == "hidden"
    assert nonfinite[0]["first_step"] == NAN_AFTER_STEP + 1
    assert nonfinite[0]["ongoing"] is True
    assert not [f for f in findings if f["run"] == HEALTHY and f["severity"] == "critical"]


def test_python_dash_m_on_the_healthy_run_passes(logdir):
    result = _run("report", logdir, "--run", "healthy*", module=True)
    assert result.returncode == 0, result.stdout + result.stderr
    assert f"Run {HEALTHY}" in result.stdout
    assert BROKEN not in result.stdout
    assert "None at or above critical." in result.stdout


def test_missing_logdir_is_exit_2_with_advice(tmp_path):
    result = _run("report", tmp_path / "nowhere")
    assert result.returncode == 2
    assert "No log directory at" in result.stderr
    assert "WeightHealthCallback" in result.stderr
    assert result.stdout == ""


def test_logdir_without_weight_health_data_is_exit_2(tmp_path):
    (tmp_path / "notes.txt").write_text("no events here")
    result = _run("report", tmp_path)
    assert result.returncode == 2
    assert "No Weight Health data" in result.stderr
    assert "WeightHealthCallback" in result.stderr and "tb_weightnorm.log" in result.stderr


def test_unknown_threshold_is_exit_2_naming_it(logdir):
    result = _run("report", logdir, "--threshold", "update_ratio_hgih.warning=0.05")
    assert result.returncode == 2
    assert "update_ratio_hgih" in result.stderr
    assert "update_ratio_high" in result.stderr  # the list of known names


# -- options, in process (same main(), no interpreter start-up) -------------------


def _main(capsys, *args):
    status = cli.main([str(a) for a in args])
    out, err = capsys.readouterr()
    return status, out, err


@pytest.mark.parametrize("fail_on", ["info", "warning", "critical"])
def test_a_critical_finding_fails_at_every_level(logdir, capsys, fail_on):
    status, _, _ = _main(capsys, "report", logdir, "--run", "nan*", "--fail-on", fail_on)
    assert status == 1


def test_fail_on_counts_findings_at_or_above_it(logdir, capsys):
    """Every variable's update ratio is "low" at an info level of 10 (and none
    under the warning level of 1e-5): info findings only."""
    low = ("--run", "healthy*", "--threshold", "update_ratio_low.info=10")
    status, out, _ = _main(capsys, "report", logdir, *low, "--json")
    findings = json.loads(out)
    assert findings and {f["severity"] for f in findings} == {"info"}
    assert {f["rule"] for f in findings} == {"update_ratio_low"}
    assert {f["threshold"] for f in findings} == {10}
    assert status == 0
    assert _main(capsys, "report", logdir, *low, "--fail-on", "warning")[0] == 0
    assert _main(capsys, "report", logdir, *low, "--fail-on", "info")[0] == 1


def test_healthy_run_fails_on_info_exactly_when_it_has_findings(logdir, capsys):
    _, out, _ = _main(capsys, "report", logdir, "--run", "healthy*", "--json")
    status, _, _ = _main(capsys, "report", logdir, "--run", "healthy*", "--fail-on", "info")
    assert status == (1 if json.loads(out) else 0)


def test_run_filter_matching_nothing_lists_the_runs(logdir, capsys):
    status, out, err = _main(capsys, "report", logdir, "--run", "baseline*")
    assert status == 2 and out == ""
    assert "baseline*" in err and HEALTHY in err and BROKEN in err


@pytest.mark.parametrize(
    "text,complaint",
    [
        ("sustain", "not NAME=VALUE"),
        ("sustain=many", "not a number"),
        ("sustain=8.5", "whole number"),
        ("sustain=none", "only the levels of a band"),
        ("dead_fraction=0.3", "dead_fraction.warning"),
        ("sustain.warning=3", "single number"),
        ("dead_fraction.severe=0.3", "info, warning, critical"),
        ("gradient_spike.warning=nan", "NaN"),
        ("sustain=inf", "finite whole number"),
    ],
)
def test_bad_thresholds_are_usage_errors(logdir, capsys, text, complaint):
    status, out, err = _main(capsys, "report", logdir, "--threshold", text)
    assert status == 2 and out == ""
    assert complaint in err


def test_threshold_values():
    assert cli.parse_threshold("sustain=8") == ("sustain", 8)
    assert cli.parse_threshold(" update_ratio_high.warning = 0.05 ") == ("update_ratio_high.warning", 0.05)
    assert cli.parse_threshold("dead_fraction.info=off") == ("dead_fraction.info", None)


def test_no_subcommand_is_a_usage_error(capsys):
    assert cli.main([]) == 2
    assert "COMMAND" in capsys.readouterr().err
    assert cli.main(["report", "--help"]) == 0
    assert "--fail-on" in capsys.readouterr().out


# -- report.py on hand-built histories --------------------------------------------

STATS = ("weight/l2", "gradient/l2", "update/ratio", "gradient/dead_fraction", "weight/nan_count")
LONG_LAYER = "functional/encoder/transformer_block_12/multi_head_attention/query"


def _history():
    variables = ("dense/kernel", "dense/bias", f"{LONG_LAYER}/kernel", "frozen/kernel", schema.GLOBAL_ROW)
    layers = ("dense", "dense", LONG_LAYER, "frozen", schema.GLOBAL_LAYER)
    nan, inf = math.nan, math.inf
    last = [
        # weight/l2, gradient/l2, update/ratio, dead_fraction, nan_count
        [3.0, 0.3, 1e-3, 0.25, 0],
        [4.0, 0.4, 2e-3, nan, 0],
        [2.0, inf, 0.5, 0.0, 7],
        [1.0, nan, nan, nan, 0],
        [5.5, 0.25, nan, nan, nan],
    ]
    values = np.array([np.ones((5, 5)), last], dtype=np.float32)
    return NormHistory(
        run="exp/train", steps=np.array([1, 11]), wall_times=np.zeros(2),
        variables=variables, layers=layers, stats=STATS, values=values,
        gradient_note="before clipping (clipnorm=1.0)",
    )


def _finding(severity, layer, variable="", first=1, value=1.0, rule="update_ratio_high"):
    return Finding(
        rule=rule, severity=severity, layer=layer, variable=variable, first_step=first,
        last_step=11, value=value, threshold=0.1, message="Lower the learning rate. " * 12,
        ongoing=True,
    )


def test_layer_summary_combines_variables_at_the_last_step():
    findings = [_finding("warning", "dense"), _finding("info", "dense"), _finding("critical", "(model)")]
    summaries = report.layer_summaries(_history(), findings)
    assert [s.layer for s in summaries] == ["dense", LONG_LAYER, "frozen"]
    dense, attention, frozen = summaries
    assert (dense.variables, dense.weight_l2, dense.gradient_l2) == (2, 5.0, pytest.approx(0.5))
    assert dense.max_update_ratio == pytest.approx(2e-3)
    assert dense.max_dead_fraction == 0.25
    assert dense.status == "warning"
    assert attention.gradient_l2 == math.inf and attention.nonfinite == 7
    assert attention.status == "nan/inf"  # no finding names it, but it holds NaN
    assert math.isnan(frozen.gradient_l2) and math.isnan(frozen.max_update_ratio)



def test_layer_summary_reads_the_layers_and_layer_norms_the_tab_shows():
    history = _history()
    summaries = report.layer_summaries(history, [])
    groups = layer_view.run_layers(history)
    assert [(s.layer, s.variables) for s in summaries] == [(g.layer, len(g.rows)) for g in groups]
    for stat, field in (("weight/l2", "weight_l2"), ("gradient/l2", "gradient_l2")):
        tab = layer_view.layer_column(history.values, history.stats, stat, groups)[-1]
        np.testing.assert_array_equal([getattr(s, field) for s in summaries], tab)

def test_text_report_layout():
    findings = [
        _finding("info", "dense", "dense/kernel", first=1),
        _finding("critical", LONG_LAYER, f"{LONG_LAYER}/kernel", first=11, value=math.inf),
        _finding("warning", "frozen", "other/path/kernel", first=1, value=math.nan),
    ]
    text = report.format_run(_history(), findings)
    lines = text.splitlines()
    assert lines[0] == "Run exp/train"
    assert "2 logged steps, steps 1-11; global gradient l2 at step 11: 0.25" in lines[1]
    assert "gradients: before clipping (clipnorm=1.0)" in lines[2]
    heads = [line for line in lines if line.startswith("  ") and line.split()[0].isupper()]
    assert [h.split()[0] for h in heads] == ["CRITICAL", "WARNING", "INFO"]
    assert "frozen: other/path/kernel" in heads[1]  # a path that does not name its layer
    assert "value inf vs threshold 0.1" in text and "value - vs threshold 0.1" in text
    table = lines[lines.index("Layers at step 11:") + 2:]
    assert [row.split()[0] for row in table] == ["dense", "functional/enco.../query", "frozen"]
    assert table[0].split()[1:] == ["2", "5", "0.5", "0.002", "0.25", "0", "info"]
    assert table[1].split()[1:] == ["1", "2", "inf", "0.5", "0", "7", "critical"]
    assert table[2].split()[1:] == ["1", "1", "-", "-", "-", "0", "warning"]
    assert "(global)" not in text and "(model)" not in text
    assert max(len(line) for line in lines) <= report.WIDTH


def test_text_report_without_findings_or_global_row():
    history = _history()
    history = NormHistory(
        run="r", steps=history.steps, wall_times=history.wall_times,
        variables=history.variables[:2], layers=history.layers[:2], stats=history.stats,
        values=history.values[:, :2],
    )
    text = report.format_run(history, [])
    assert "Findings: none." in text
    assert "global gradient" not in text


def test_findings_json_is_strict_json():
    findings = [
        ("a", _finding("critical", "dense", value=math.nan)),
        ("b", _finding("warning", "dense", value=np.float32(math.inf))),
        ("b", _finding("info", "dense", value=np.float64(-math.inf), first=np.int64(3))),
    ]
    parsed = json.loads(report.findings_json(findings), parse_constant=_no_bare_constants)
    assert [f["run"] for f in parsed] == ["a", "b", "b"]
    assert [f["value"] for f in parsed] == [None, "Infinity", "-Infinity"]
    assert parsed[2]["first_step"] == 3
    assert report.findings_json([]) == "[]"


def test_numbers_and_names():
    assert report.format_number(math.nan) == "-"
    assert report.format_number(None) == "-"
    assert report.format_number(-math.inf) == "-inf"
    assert report.format_number(np.float32(1.5e-7)) == "1.5e-07"
    assert report.shorten("short", 10) == "short"
    assert report.shorten("abcdefghijklmnop", 10) == "abc...mnop"
    assert len(report.shorten("x" * 200, 24)) == 24


def _no_bare_constants(name):
    raise AssertionError(f"bare {name} in JSON output")
