"""The diagnosis on real runs made to go wrong, and on healthy ones.

Every run in health_runs.py trains a real model and logs every step; the tests
read the logs back the way the plugin does and diagnose them.
"""


import numpy as np
import pytest

from support import health_runs
from tb_weightnorm import diagnosis, schema
from tb_weightnorm.read import export
from tb_weightnorm.read.history import HistoryBuffer, NormHistory

# A sustained condition needs Thresholds.sustain logged steps; allow one more.
DETECTION_DELAY = diagnosis.Thresholds().sustain + 1


@pytest.fixture(scope="session")
def health_logdir(tmp_path_factory):
    logdir = tmp_path_factory.mktemp("health_runs")
    onsets = health_runs.write_all(str(logdir))
    return logdir, onsets


@pytest.fixture(scope="session")
def histories(health_logdir):
    logdir, _ = health_logdir
    return {h.run.split("/")[0]: h for h in export.histories(str(logdir))}


def _first_detection(history, rule):
    """The first logged step at which diagnosing the run so far reports `rule`
    at warning or above: when a user watching the tab would have been told."""
    for n in range(1, len(history.steps) + 1):
        found = diagnosis.diagnose(history.head(n))
        if any(f.rule == rule and f.severity != "info" for f in found):
            return int(history.steps[n - 1])
    return None


@pytest.mark.parametrize("run", [f.__name__ for f in health_runs.HEALTHY])
def test_healthy_runs_raise_no_warning(histories, run):
    serious = [f for f in diagnosis.diagnose(histories[run]) if f.severity != "info"]
    assert serious == []


@pytest.mark.parametrize("run", list(health_runs.SICK))
def test_each_sick_run_is_found_within_a_few_logged_steps_of_its_onset(health_logdir, histories, run):
    _, onsets = health_logdir
    history = histories[run]
    onset = onsets[run]
    for rule in health_runs.SICK[run][1]:
        found = [f for f in diagnosis.diagnose(history) if f.rule == rule]
        assert found, f"{run}: no {rule} finding"
        assert all(f.severity in ("warning", "critical") for f in found)
        assert all(f.message for f in found)
        start = onset
        if rule == "weight_norm_growth":
            # The onset of growth "without bound" is where it crossed the bound.
            weight = history.column("weight/l2")[:, 0]
            start = int(history.steps[np.argmax(weight >= 10 * weight[0])])
        detected = _first_detection(history, rule)
        assert detected is not None and detected - start <= DETECTION_DELAY, (run, rule, start, detected)


def test_nonfinite_names_the_first_step_and_layer(histories):
    history = histories["nan_injected"]
    found = [f for f in diagnosis.diagnose(history) if f.rule == "nonfinite"]
    assert len(found) == 1
    finding = found[0]
    assert finding.severity == "critical"
    assert finding.first_step == health_runs.NAN_AT + 1
    # The finding names the first layer, in model order, whose values hold a
    # NaN at that step. hidden_1 holds the one written into it; whether it
    # also reaches hidden_0's gradient (through a ReLU, then the loss)
    # depends on the CPU's kernels, so the expected layer is read from what
    # was logged.
    step = history.step_index(health_runs.NAN_AT + 1)
    counts = sum(
        np.nan_to_num(history.column(f"{kind}/{stat}")[step])
        for kind in ("weight", "gradient")
        for stat in ("nan_count", "inf_count")
    )
    first_broken = history.layers[int(np.flatnonzero(counts > 0)[0])]
    assert finding.layer == first_broken and first_broken in ("hidden_0", "hidden_1")
    poisoned = [i for i, v in enumerate(history.variables) if v.endswith("hidden_1/kernel")]
    assert counts[poisoned].sum() > 0
    assert finding.last_step == history.steps[-1] and finding.ongoing
    # The other rules do not report the wreckage after the NaN.
    assert [f.rule for f in diagnosis.diagnose(history)] == ["nonfinite"]


def test_exploding_gradients_are_reported_before_the_nan(histories):
    found = {f.rule: f for f in diagnosis.diagnose(histories["high_learning_rate"])}
    assert found["exploding_gradients"].layer == schema.GLOBAL_LAYER
    if "nonfinite" in found:
        assert found["exploding_gradients"].first_step < found["nonfinite"].first_step


def test_stagnant_layer_is_only_the_one_with_zero_learning_rate(histories):
    found = [f for f in diagnosis.diagnose(histories["frozen_zero_lr"]) if f.rule == "stagnant_layer"]
    assert [f.layer for f in found] == [health_runs.FROZEN_LAYER]
    assert found[0].variable == ""  # every variable of the layer
    assert "gradient is not zero" in found[0].message


def test_dead_units_name_the_killed_layer(histories):
    found = {f.layer: f for f in diagnosis.diagnose(histories["dead_relu"]) if f.rule == "dead_units"}
    assert health_runs.DEAD_LAYER in found
    assert found[health_runs.DEAD_LAYER].first_step == health_runs.DEAD_AT + 1
    assert found[health_runs.DEAD_LAYER].severity == "critical"


def test_vanishing_gradients_flag_the_early_layers_of_the_sigmoid_stack(histories):
    found = [f.layer for f in diagnosis.diagnose(histories["deep_sigmoid"]) if f.rule == "vanishing_gradients"]
    assert "hidden_0" in found
    assert "output" not in found and "hidden_11" not in found


def test_the_callback_finds_what_the_logs_show(health_logdir, histories):
    for run, found in health_runs.CALLBACK_FINDINGS.items():
        from_logs = diagnosis.diagnose(histories[run])
        assert [(f.rule, f.layer, f.first_step) for f in found] == [
            (f.rule, f.layer, f.first_step) for f in from_logs
        ], run


# -- the rules on hand-made numbers ----------------------------------------------


def _history(values, variables=("d/kernel", "d/bias"), layers=("d", "d"), stats=("weight/l2",)):
    values = np.asarray(values, np.float32)
    return NormHistory(
        run="r",
        steps=np.arange(1, len(values) + 1),
        wall_times=np.zeros(len(values)),
        variables=variables,
        layers=layers,
        stats=stats,
        values=values,
    )


def test_an_empty_history_has_no_findings():
    assert diagnosis.diagnose(_history(np.zeros((0, 2, 1)))) == []


def test_a_single_noisy_step_is_not_a_sustained_problem():
    stats = ("weight/l2", "update/l2", "update/ratio")
    ratio = np.full(20, 1e-3)
    ratio[10] = 5.0
    values = np.stack([np.ones(20), ratio, ratio], axis=1)[:, None, :]
    history = _history(values, variables=("d/kernel",), layers=("d",), stats=stats)
    assert diagnosis.diagnose(history) == []
    ratio[10:16] = 5.0
    values = np.stack([np.ones(20), ratio, ratio], axis=1)[:, None, :]
    found = diagnosis.diagnose(_history(values, variables=("d/kernel",), layers=("d",), stats=stats))
    assert [(f.rule, f.severity, f.first_step, f.last_step) for f in found] == [
        ("update_ratio_high", "critical", 11, 16)
    ]


def test_a_bias_that_starts_at_zero_is_not_judged_by_its_update_ratio():
    stats = ("weight/l2", "update/l2", "update/ratio")
    steps = 30
    kernel = np.stack([np.ones(steps), np.full(steps, 1e-3), np.full(steps, 1e-3)], axis=1)
    bias_w = np.linspace(1e-3, 3e-2, steps)
    bias = np.stack([bias_w, np.full(steps, 1e-3), 1e-3 / bias_w], axis=1)
    found = diagnosis.diagnose(_history(np.stack([kernel, bias], axis=1), stats=stats))
    assert found == []


def test_thresholds_can_be_changed_and_bad_names_are_refused():
    t = diagnosis.Thresholds().replace(**{"dead_fraction.warning": 0.3, "sustain": 3})
    assert t.dead_fraction.warning == 0.3 and t.sustain == 3
    with pytest.raises(ValueError, match="unknown threshold 'dead'"):
        diagnosis.Thresholds().replace(dead=1)
    with pytest.raises(ValueError, match="dead_fraction.warning=VALUE"):
        diagnosis.Thresholds().replace(dead_fraction=1)
    with pytest.raises(ValueError, match="sustain=VALUE"):
        diagnosis.Thresholds().replace(**{"sustain.warning": 1})


def test_the_history_buffer_keeps_the_start_and_the_latest_steps():
    names = schema.NormTableNames(("v",), ("l",), ("weight/l2",))
    buffer = HistoryBuffer(names, max_steps=8)
    for step in range(1, 21):
        buffer.append(step, 0.0, np.full((1, 1), step))
    history = buffer.history("r")
    assert history.steps.tolist() == [1, 2, 15, 16, 17, 18, 19, 20]
    assert history.values[:, 0, 0].tolist() == history.steps.tolist()


def _ratio_history(ratios):
    """Two one-kernel layers with the given update ratios over steps."""
    stats = ("weight/l2", "update/l2", "update/ratio")
    columns = [np.stack([np.ones(len(r)), np.asarray(r), np.asarray(r)], axis=1) for r in ratios]
    return _history(np.stack(columns, axis=1), variables=("a/kernel", "b/kernel"), layers=("a", "b"), stats=stats)


def test_a_learning_rate_schedule_decaying_everywhere_is_info_but_one_stalled_layer_is_a_warning():
    healthy, decayed = np.full(40, 1e-3), np.concatenate([np.full(20, 1e-3), np.full(20, 1e-7)])
    found = diagnosis.diagnose(_ratio_history([decayed, decayed]))
    assert {(f.rule, f.severity) for f in found} == {("update_ratio_low", "info")}
    assert "schedule" in found[0].message
    found = diagnosis.diagnose(_ratio_history([healthy, decayed]))
    assert [(f.rule, f.severity, f.layer) for f in found] == [("update_ratio_low", "warning", "b")]
    too_small = np.full(40, 1e-7)
    found = diagnosis.diagnose(_ratio_history([too_small, too_small]))
    assert {(f.rule, f.severity) for f in found} == {("update_ratio_low", "warning")}


def test_a_missing_gradient_is_not_read_as_zero():
    # A layer that does not move, with no gradient logged at all (None in
    # log()), is stagnant; the finding does not claim its gradient was 0,
    # and a layer whose update is missing too is not judged at all.
    from tb_weightnorm.read.history import NormHistory

    steps = np.arange(1, 9)
    stats = ("weight/l2", "gradient/l2", "update/l2", "update/ratio")
    values = np.full((len(steps), 3, len(stats)), np.nan, np.float32)
    values[:, :, 0] = 1.0
    values[:, 0, 2:] = 0.0  # "still": no update, no gradient logged
    values[:, 2, 1:] = [0.5, 1e-3, 1e-3]  # "moving": a healthy layer
    history = NormHistory(
        run="r", steps=steps, wall_times=np.zeros(len(steps)), variables=("still/kernel", "unlogged/kernel", "moving/kernel"),
        layers=("still", "unlogged", "moving"), stats=stats, values=values,
    )
    found = {f.layer: f for f in diagnosis.diagnose(history)}
    assert set(found) == {"still"} and found["still"].rule == "stagnant_layer"
    assert "no gradient was logged" in found["still"].message and "exactly zero" not in found["still"].message
