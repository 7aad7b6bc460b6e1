"""layer_view.py on hand-built tables: what real training rarely writes
(infinities, rows that did not measure a stat, a gate row beside its whole
variable, a table without update columns)."""

import numpy as np
import pytest

from tb_weightnorm.read import layer_view

NAN, INF = float("nan"), float("inf")


def table(stats, rows):
    """values [steps, rows, stats] from {stat: [[row values] per step]}."""
    return np.stack([np.array(rows[s], np.float64) for s in stats], axis=-1)


def combined(stats, rows, stat, variables=("d/kernel", "d/bias"), layers=("d", "d")):
    groups = layer_view.layer_rows(list(variables), list(layers))
    return layer_view.layer_column(table(stats, rows), stats, stat, groups)[:, 0].tolist()


@pytest.mark.parametrize(
    "stat, rule",
    [
        ("weight/l2", "norm"),
        ("gradient/l2", "norm"),
        ("update/l2", "norm"),
        ("weight/dist_init", "norm"),
        ("weight/l1", "sum"),
        ("gradient/nan_count", "sum"),
        ("weight/inf_count", "sum"),
        ("gradient/linf", "max"),
        ("weight/max", "max"),
        ("gradient/dead_fraction", "max"),
        ("weight/min", "min"),
        ("update/ratio", "ratio"),
        ("weight/mean", "main"),
        ("gradient/std", "main"),
    ],
)
def test_each_stat_has_its_rule(stat, rule):
    assert layer_view.combine_rule(stat) == rule


def test_rows_not_measured_are_left_out_and_a_layer_without_any_is_nan():
    stats = ["weight/l2", "gradient/dead_fraction", "gradient/l2"]
    rows = {
        "weight/l2": [[3.0, 4.0], [3.0, 4.0]],
        "gradient/dead_fraction": [[0.25, NAN], [NAN, NAN]],  # a bias has no units
        "gradient/l2": [[NAN, 2.0], [NAN, NAN]],
    }
    assert combined(stats, rows, "gradient/dead_fraction")[0] == 0.25
    assert np.isnan(combined(stats, rows, "gradient/dead_fraction")[1])
    assert combined(stats, rows, "gradient/l2")[0] == 2.0
    assert np.isnan(combined(stats, rows, "gradient/l2")[1])


@pytest.mark.parametrize(
    "stat, values, expected",
    [
        ("weight/l2", [10.0, INF], INF),
        ("weight/l1", [10.0, INF], INF),
        ("gradient/nan_count", [NAN, INF], INF),
        ("weight/max", [1.0, INF], INF),
        ("weight/min", [1.0, -INF], -INF),
        ("weight/min", [1.0, INF], INF),  # the smallest alone would hide it
        ("weight/mean", [1.0, INF], INF),  # the main weight (row 0) is finite
        ("weight/mean", [1.0, -INF], -INF),
        ("gradient/std", [NAN, INF], INF),
    ],
)
def test_an_infinite_row_makes_the_layer_infinite_whatever_the_rule(stat, values, expected):
    # Row 0 has the larger weight l2 (it is the main weight) unless the stat is l2 itself.
    rows = {"weight/l2": [[10.0, 1.0]], stat: [values]}
    assert combined(list(rows), rows, stat) == [expected]


def test_the_main_weight_is_the_largest_row_that_measured_the_stat():
    stats = ["weight/l2", "gradient/mean"]
    rows = {"weight/l2": [[1.0, 5.0], [7.0, 5.0]], "gradient/mean": [[0.1, NAN], [0.1, 0.2]]}
    # Step 0: the larger row got no gradient, so the other speaks for the layer.
    assert combined(stats, rows, "gradient/mean") == [0.1, 0.1]


def test_update_ratio_divides_the_layer_norms_like_a_row():
    stats = ["weight/l2", "update/l2", "update/ratio"]
    rows = {
        "weight/l2": [[3.0, 4.0], [0.0, 0.0], [3.0, 4.0], [3.0, 4.0]],
        "update/l2": [[0.3, 0.4], [0.1, 0.0], [INF, 0.1], [0.5, NAN]],
        "update/ratio": [[0.1, 0.1], [0.0, 0.0], [INF, 0.025], [0.5 / 3, NAN]],
    }
    ratio = combined(stats, rows, "update/ratio")
    assert ratio[0] == pytest.approx(0.5 / 5.0)
    assert ratio[1] == 0.0  # a zero weight: 0, as per row
    assert ratio[2] == INF
    # Only the rows whose update was measured count in the weight norm.
    assert ratio[3] == pytest.approx(0.5 / 3.0)
    # Without update/l2 the main weight's ratio stands for the layer.
    without = {s: rows[s] for s in ("weight/l2", "update/ratio")}
    assert combined(["weight/l2", "update/ratio"], without, "update/ratio")[0] == pytest.approx(0.1)


def test_a_gate_row_beside_its_whole_variable_counts_once():
    variables = ["l/cell/kernel", "l/cell/kernel[input]", "l/cell/kernel[forget]", "d/kernel"]
    groups = layer_view.layer_rows(variables, ["l", "l", "l", "d"])
    assert [(g.layer, g.variables) for g in groups] == [("l", ("l/cell/kernel",)), ("d", ("d/kernel",))]
    gates_only = layer_view.layer_rows(variables[1:], ["l", "l", "d"])
    assert gates_only[0].rows == (0, 1)


def test_skipped_rows_belong_to_no_layer_and_layers_keep_model_order():
    groups = layer_view.layer_rows(["b/x", "a/x", "b/y", "(global)"], ["b", "a", "b", "(model)"], skip={"(global)"})
    assert [(g.layer, g.rows) for g in groups] == [("b", (0, 2)), ("a", (1,))]


def test_an_unknown_stat_is_an_error():
    with pytest.raises(ValueError, match="weight/l9"):
        layer_view.layer_column(np.zeros((1, 1, 1)), ["weight/l2"], "weight/l9", layer_view.layer_rows(["v"], ["l"]))


def test_some_rows_are_grouped_in_the_order_given():
    variables, layers = ["b/x", "a/x", "b/y", "a/y"], ["b", "a", "b", "a"]
    groups = layer_view.layer_rows(variables, layers, rows=[3, 2, 1])
    assert [(g.layer, g.rows, g.variables) for g in groups] == [("a", (3, 1), ("a/y", "a/x")), ("b", (2,), ("b/y",))]
    assert layer_view.layer_rows(variables, layers, rows=[]) == []


@pytest.mark.parametrize(
    "stat, rule", [("weight/l2", "norm"), ("weight/l1", "sum"), ("weight/max", "max"), ("weight/min", "min")]
)
def test_combine_is_the_layer_column_of_a_stat_its_rule_needs_nothing_else_for(stat, rule):
    # One layer view: the report and the diagnosis combine a column the way
    # the tab combines the stat.
    values = np.array([[[3.0], [4.0], [NAN], [-2.0]], [[NAN], [NAN], [NAN], [1.0]], [[1.0], [NAN], [5.0], [2.0]]])
    variables, layers = ["d/kernel", "d/bias", "o/kernel", "o/bias"], ["d", "d", "o", "o"]
    groups = layer_view.layer_rows(variables, layers)
    by_rule = layer_view.combine(values[:, :, 0], [g.rows for g in groups], rule)
    np.testing.assert_array_equal(by_rule, layer_view.layer_column(values, [stat], stat, groups))
    assert np.isnan(by_rule[1, 0])  # no row of d measured it at step 1


def test_combine_takes_any_rows_together_and_refuses_rules_that_need_other_stats():
    column = np.array([[3.0, NAN, 4.0], [NAN, NAN, NAN]])
    np.testing.assert_array_equal(layer_view.combine(column, [(0, 1, 2), (1,)], "norm"), [[5.0, NAN], [NAN, NAN]])
    assert layer_view.combine(column, [], "max").shape == (2, 0)
    for rule in ("ratio", "main"):
        with pytest.raises(ValueError, match=rule):
            layer_view.combine(column, [(0,)], rule)
