"""The Weight Health tab in headless Chromium, served by a real `tensorboard`.

Every view is driven the way a user would: run and stat selectors, hovering
and clicking the heatmap, findings, the norm table, the layer detail with two
runs overlaid, histograms, the kernel grid's step slider, a shared link, the
reload button and TensorBoard's own dark-mode menu.
"""

import urllib.parse

import pytest
from playwright.sync_api import expect

from support import plugin_logs
from support.servers import tensorboard_process, wait_for_json

from support.browser import assert_not_blank, choose_run, host_hash, open_tab, wait_for_heatmap


def test_tab_shows_the_models_layers(browser, demo_logdir, tmp_path):
    with tensorboard_process(demo_logdir) as base:
        page, frame, errors = open_tab(browser, base)
        table = frame.locator("[data-testid=norm-table]")
        table.wait_for(timeout=60_000)
        frame.locator("[data-testid=norm-row]").first.wait_for(timeout=60_000)
        text = table.inner_text()
        for layer in ["conv1", "conv2", "dense", "logits"]:
            assert layer in text
        assert "shapes_cnn/conv1/kernel" in text
        assert frame.locator("[data-testid=norm-row]").count() == 9  # 8 variables and (global)
        assert "(global)" in text
        # The run selector lists the run, and the heatmap drew on a canvas.
        assert "healthy/train" in frame.locator("[data-testid=run-select]").inner_text()
        wait_for_heatmap(frame)
        assert_not_blank(page.screenshot(full_page=True))
        assert not errors, errors
        page.close()


@pytest.fixture(scope="module")
def api_tensorboard(api_logdir):
    """One tensorboard over the API runs for the tests of this module that use them."""
    with tensorboard_process(api_logdir) as base:
        wait_for_json(base + "/data/plugin/weight_health/runs", lambda body: len(body["runs"]) >= 5)
        yield base


def test_heatmap_hover_and_click_open_a_layer_with_two_runs_overlaid(browser, api_tensorboard, tmp_path):
    page, frame, errors = open_tab(browser, api_tensorboard)
    choose_run(frame, plugin_logs.CNN_RUN)
    canvas = wait_for_heatmap(frame)
    box = canvas.bounding_box()
    # The top row is the first layer in model order.
    canvas.hover(position={"x": box["width"] * 0.5, "y": 3})
    tooltip = frame.locator("[data-testid=heatmap-tooltip]")
    tooltip.wait_for(state="visible", timeout=10_000)
    assert tooltip.get_attribute("data-layer") == "rgb_conv"
    assert "gradient/l2" in tooltip.inner_text()
    canvas.click(position={"x": box["width"] * 0.5, "y": 3})

    detail = frame.locator("[data-testid=layer-detail]")
    detail.wait_for(state="visible", timeout=30_000)
    assert frame.locator("[data-testid=layer-title]").inner_text() == "Layer rgb_conv"
    assert not frame.locator("[data-testid=overview]").is_visible()
    # Both runs of the same model are overlaid in every chart of the layer.
    chips = frame.locator("[data-testid=run-chip]")
    assert sorted(chips.all_inner_texts()) == sorted([plugin_logs.CNN_RUN, plugin_logs.CNN_HIGH_RUN])
    charts = frame.locator("[data-testid=layer-chart]")
    charts.first.locator("canvas").first.wait_for(timeout=30_000)
    frame.locator("[data-testid=layer-chart] .u-legend").first.wait_for(timeout=30_000)
    legend = charts.first.locator(".u-legend").inner_text()
    assert plugin_logs.CNN_RUN in legend and plugin_logs.CNN_HIGH_RUN in legend
    assert charts.count() >= 3

    # Histograms of both runs, in offset and overlay modes.
    histograms = frame.locator("[data-testid=histograms]")
    histograms.locator("svg path").first.wait_for(timeout=30_000)
    assert sorted(histograms.locator("[data-testid=hist-run]").all_inner_texts()) == sorted(
        [plugin_logs.CNN_RUN, plugin_logs.CNN_HIGH_RUN]
    )
    frame.locator("[data-testid=hist-mode-overlay]").click()
    frame.locator("[data-testid=hist-mode-overlay][aria-pressed=true]").wait_for(timeout=10_000)
    assert host_hash(page)["mode"] == "overlay"

    # The kernel grid's slider shows another step's image.
    image = frame.locator("[data-testid=kernel-image]")
    image.wait_for(timeout=30_000)
    image.evaluate("img => img.decode()")
    assert image.evaluate("img => img.naturalWidth") > 0
    first_src = image.get_attribute("src")
    frame.locator("[data-testid=kernel-step]").evaluate(
        "s => { s.value = '0'; s.dispatchEvent(new Event('input', {bubbles: true})); s.dispatchEvent(new Event('change', {bubbles: true})); }"
    )
    assert image.get_attribute("src") != first_src
    assert "step=0" in image.get_attribute("src")

    # The state is in TensorBoard's URL, so the view can be shared as a link.
    keys = host_hash(page)
    assert keys["view"] == "layer" and keys["layer"] == "rgb_conv" and keys["run"] == plugin_logs.CNN_RUN
    shot = page.screenshot(full_page=True)
    assert_not_blank(shot)
    (tmp_path / "layer_detail.png").write_bytes(shot)
    frame.locator("[data-testid=back]").click()
    frame.locator("[data-testid=overview]").wait_for(state="visible", timeout=10_000)
    assert not errors, errors
    page.close()


def test_a_shared_link_opens_the_same_view(browser, api_tensorboard):
    link = "&" + "&".join(
        f"p.weight_health.{key}={urllib.parse.quote(value, safe='')}"
        for key, value in [("run", plugin_logs.CNN_HIGH_RUN), ("view", "layer"), ("layer", "deep_conv"), ("mode", "overlay"), ("kind", "weight")]
    )
    page, frame, errors = open_tab(browser, api_tensorboard, link)
    frame.locator("[data-testid=layer-detail]").wait_for(state="visible", timeout=60_000)
    assert frame.locator("[data-testid=layer-title]").inner_text() == "Layer deep_conv"
    assert frame.locator("[data-testid=run-select]").input_value() == plugin_logs.CNN_HIGH_RUN
    frame.locator("[data-testid=hist-mode-overlay][aria-pressed=true]").wait_for(timeout=30_000)
    assert frame.locator("[data-testid=hist-kind]").input_value() == "weight"
    assert not errors, errors
    page.close()


def test_findings_open_the_layer_and_step_a_finding_is_about(browser, api_tensorboard):
    page, frame, errors = open_tab(browser, api_tensorboard)
    choose_run(frame, plugin_logs.NAN_RUN)
    finding = frame.locator("[data-testid=finding][data-severity=critical]").first
    finding.wait_for(timeout=60_000)
    text = finding.inner_text()
    first_step = plugin_logs.NAN_AT_BATCH + 1
    assert "nonfinite" in text and f"steps {first_step}" in text
    layer = finding.get_attribute("data-layer")
    finding.click()
    frame.locator("[data-testid=layer-detail]").wait_for(state="visible", timeout=30_000)
    assert frame.locator("[data-testid=layer-title]").inner_text() == f"Layer {layer}"
    assert host_hash(page)["step"] == str(first_step)
    assert not errors, errors
    page.close()


def test_norm_table_sorts_filters_marks_nan_and_changes_step(browser, api_tensorboard):
    page, frame, errors = open_tab(browser, api_tensorboard)
    choose_run(frame, plugin_logs.NAN_RUN)
    rows = frame.locator("[data-testid=norm-row]")
    # At the last step every variable went NaN: every row but none is marked.
    frame.locator("[data-testid=norm-row].has-nonfinite").first.wait_for(timeout=30_000)
    assert frame.locator("[data-testid=norm-row].has-nonfinite").count() >= 6
    title = frame.locator("[data-testid=norms] h2")
    assert title.inner_text() == f"Norms at step {plugin_logs.NAN_STEPS}"

    # The first logged step, before the NaN: nothing is marked.
    frame.locator("[data-testid=table-step]").evaluate(
        "s => { s.value = '0'; s.dispatchEvent(new Event('input')); s.dispatchEvent(new Event('change')); }"
    )
    expect(title).not_to_have_text(f"Norms at step {plugin_logs.NAN_STEPS}", timeout=30_000)
    assert int(title.inner_text().rsplit(" ", 1)[1]) <= plugin_logs.NAN_AT_BATCH
    expect(frame.locator("[data-testid=norm-row].has-nonfinite")).to_have_count(0, timeout=30_000)

    frame.locator("[data-testid=table-filter]").fill("MIDDLE")
    expect(frame.locator("[data-testid=norm-row]:not([data-layer=middle])")).to_have_count(0)
    assert rows.count() == 2
    frame.locator("[data-testid=table-filter]").fill("")
    expect(rows).to_have_count(7)
    frame.locator("th[data-column='weight/l2']").click()
    frame.locator("th[data-column='weight/l2'][aria-sort=descending]").wait_for(timeout=10_000)
    values = rows.evaluate_all(
        "rs => rs.filter(r => r.dataset.layer !== '(model)').map(r => parseFloat(r.children[2].title))"
    )
    assert values == sorted(values, reverse=True)
    assert host_hash(page)["sort"] == "weight/l2"
    assert not errors, errors
    page.close()


def test_names_are_shown_as_text_never_run(browser, api_tensorboard):
    page, frame, errors = open_tab(browser, api_tensorboard)
    choose_run(frame, plugin_logs.HOSTILE_RUN)
    wait_for_heatmap(frame)
    table = frame.locator("[data-testid=norm-table]")
    assert plugin_logs.HOSTILE_LAYER in table.inner_text()
    row = frame.locator(f"[data-testid=norm-row]").first
    assert row.get_attribute("data-layer") == plugin_logs.HOSTILE_LAYER
    row.click()
    frame.locator("[data-testid=layer-detail]").wait_for(state="visible", timeout=30_000)
    assert frame.locator("[data-testid=layer-title]").inner_text() == f"Layer {plugin_logs.HOSTILE_LAYER}"
    frame.locator("[data-testid=histograms] svg path").first.wait_for(timeout=30_000)
    # No element was made from the name: the only images are ours.
    assert frame.locator("img[src='x']").count() == 0
    page.wait_for_timeout(500)
    assert not errors, errors  # includes any alert()
    page.close()


def test_follows_tensorboard_dark_mode(browser, api_tensorboard, tmp_path):
    page, frame, errors = open_tab(browser, api_tensorboard)
    choose_run(frame, plugin_logs.CNN_RUN)
    wait_for_heatmap(frame)
    page.locator('button[aria-label="Menu for changing light or dark theme"]').click()
    page.locator('button[title="Force dark TensorBoard theme."]').click()
    frame.locator("body.wh-dark").wait_for(state="attached", timeout=10_000)
    background = frame.locator("body").evaluate("b => getComputedStyle(b).backgroundColor")
    rgb = [int(v) for v in background[background.index("(") + 1 : background.index(")")].split(",")[:3]]
    assert sum(rgb) / 3 < 80, background
    text = frame.locator(".wh-root").evaluate("r => getComputedStyle(r).color")
    assert text != "rgb(33, 33, 33)"
    shot = page.screenshot(full_page=True)
    assert_not_blank(shot)
    (tmp_path / "dark.png").write_bytes(shot)
    page.locator('button[aria-label="Menu for changing light or dark theme"]').click()
    page.locator('button[title="Force light TensorBoard theme."]').click()
    frame.locator("body:not(.wh-dark)").wait_for(state="attached", timeout=10_000)
    assert not errors, errors
    page.close()


def test_reload_button_brings_a_new_run(browser, tmp_path):
    logdir = tmp_path / "logs"
    plugin_logs.train_with_nan(str(logdir), "first/train", 1000)
    with tensorboard_process(logdir) as base:
        page, frame, errors = open_tab(browser, base)
        frame.locator("[data-testid=norm-row]").first.wait_for(timeout=60_000)
        assert frame.locator("[data-testid=run-select] option").all_inner_texts() == ["first/train"]
        plugin_logs.train_with_nan(str(logdir), "second/train", 1000)
        wait_for_json(base + "/data/plugin/weight_health/runs", lambda body: len(body["runs"]) == 2)
        page.locator("button.reload-button").click()
        frame.locator("[data-testid=run-select] option", has_text="second/train").wait_for(state="attached", timeout=30_000)
        assert not errors, errors
        page.close()


