"""Run, layer and variable names that are HTML, quotes, Unicode (right-to-left,
emoji, combining marks, CJK) or 1,000+ characters long, shown by the tab in
headless Chromium over a real `tensorboard`: each appears as exactly its text
in the run selector, the norm table, the heatmap's labels and tooltip, the
findings and the layer title; nothing in a name runs (no `onerror`, `onload`
or script sets the window flag, no element is made of it); and long names
stay inside their panels (the page never scrolls sideways)."""

import json
import urllib.parse

import pytest

from support import plugin_logs
from support.browser import open_tab, wait_for_heatmap
from support.servers import http_get, tensorboard_process, wait_for_json

FLAG = plugin_logs.WINDOW_FLAG
NAN_RUN = plugin_logs.NAMED_RUNS[0]  # the run with a finding
LONG_RUN = plugin_logs.NAMED_RUNS[-1]


@pytest.fixture(scope="module")
def named_tensorboard(tmp_path_factory):
    logdir = tmp_path_factory.mktemp("named_logs")
    plugin_logs.train_named(str(logdir))
    with tensorboard_process(logdir) as base:
        wait_for_json(base + "/data/plugin/weight_health/runs", lambda body: len(body["runs"]) == len(plugin_logs.NAMED_RUNS))
        yield base


def served(base, route, **params):
    query = urllib.parse.urlencode(params)
    status, body = http_get(f"{base}/data/plugin/weight_health/{route}?{query}")
    assert status == 200, body[:300]
    return json.loads(body)


def assert_nothing_ran(page, frame_element):
    """No name became an element or ran: the flag any of them would set is
    unset in the tab and in TensorBoard's page, and no element of theirs exists."""
    frame = frame_element.content_frame()
    for window in (page, frame):
        assert window.evaluate(f"() => window.{FLAG} === undefined"), window.evaluate(f"() => window.{FLAG}")
    injected = frame.evaluate(
        """() => ({
            images: document.querySelectorAll('img[src="x"], img[src=x]').length,
            svgs: [...document.querySelectorAll('svg[onload]')].length,
            handlers: [...document.querySelectorAll('*')].filter(e => [...e.attributes].some(a => a.name.startsWith('on'))).length,
            scripts: [...document.querySelectorAll('script')].filter(s => s.textContent.includes('alert') || s.textContent.includes('%s')).length,
            bold: document.querySelectorAll('b').length,
        })"""
        % FLAG
    )
    assert injected == {"images": 0, "svgs": 0, "handlers": 0, "scripts": 0, "bold": 0}, injected


def assert_no_sideways_scroll(frame_element):
    """The tab's page is never wider than its window, and nothing sticks out
    of its panel: long names wrap, are cut with an ellipsis, or scroll
    inside their own panel."""
    frame = frame_element.content_frame()
    widths = frame.evaluate(
        """() => ({page: document.documentElement.scrollWidth, body: document.body.scrollWidth,
                   window: document.documentElement.clientWidth})"""
    )
    # What sticks out of its panel (a chart, or else a section), unless
    # something between them scrolls.
    sticking_out = frame.evaluate(
        """() => {
            const width = document.documentElement.clientWidth;
            const out = [];
            for (const e of document.body.querySelectorAll('*')) {
                if (!e.getClientRects().length) continue;
                let limit = width, scrolls = false;
                for (let p = e.parentElement; p && p !== document.body; p = p.parentElement) {
                    const style = getComputedStyle(p);
                    if (style.overflowX === 'auto' || style.overflowX === 'scroll') { scrolls = true; break; }
                    if (p.matches('.wh-chart, .wh-section')) { limit = p.getBoundingClientRect().right; break; }
                }
                const right = e.getBoundingClientRect().right;
                if (!scrolls && right > limit + 1) out.push(`${e.tagName}.${e.getAttribute('class')} ${Math.round(right - limit)}px out`);
            }
            return out.slice(0, 8);
        }"""
    )
    assert max(widths["page"], widths["body"]) <= widths["window"] + 1 and not sticking_out, (widths, sticking_out)


def test_names_are_shown_as_exactly_their_text_and_never_run(browser, named_tensorboard):  # noqa: F811
    base = named_tensorboard
    page, frame, errors = open_tab(browser, base)
    frame_element = page.locator("iframe").element_handle()

    # The run selector lists every run by its exact name.
    select = frame.locator("[data-testid=run-select]")
    select.locator("option").first.wait_for(state="attached", timeout=60_000)
    options = select.locator("option").evaluate_all("os => os.map(o => [o.textContent, o.value])")
    assert sorted(options) == sorted([run, run] for run in plugin_logs.NAMED_RUNS), options
    select.select_option(NAN_RUN)
    assert select.input_value() == NAN_RUN

    # The norm table: every row's layer and variable, exactly as served.
    table = served(base, "table", run=NAN_RUN)
    rows = frame.locator("[data-testid=norm-row]")
    rows.first.wait_for(timeout=60_000)
    expected_rows = [(r["layer"], r["variable"]) for r in table["rows"]]
    assert {layer for layer, _ in expected_rows} >= set(plugin_logs.NAMED_LAYERS.values())
    assert any(v.endswith("/" + plugin_logs.NAMED_VARIABLE) for _, v in expected_rows)
    shown = rows.evaluate_all("rs => rs.map(r => [r.children[0].textContent, r.children[1].textContent, r.dataset.layer, r.dataset.variable])")
    assert sorted(shown) == sorted([layer, variable, layer, variable] for layer, variable in expected_rows)

    # The heatmap (by layer): a label per layer, its text and tooltip its name.
    canvas = wait_for_heatmap(frame)
    heatmap = served(base, "heatmap", run=NAN_RUN, stat="gradient/l2", by="layer")
    names = [r["variables"][0] if r["global"] else r["layer"] for r in heatmap["rows"]]
    assert names[:-1] == [r["layer"] for r in heatmap["rows"][:-1]] and set(names) >= set(plugin_logs.NAMED_LAYERS.values())
    labels = frame.locator(".wh-heatmap-label")
    assert labels.evaluate_all("ls => ls.map(l => [l.textContent, l.title])") == [[n, n] for n in names]
    tooltip = frame.locator("[data-testid=heatmap-tooltip]")
    hovered = []
    for label in labels.all()[:-1]:  # the global row is drawn apart, below a gap
        label_box = label.bounding_box()
        canvas_box = canvas.bounding_box()
        canvas.hover(position={"x": canvas_box["width"] / 2, "y": label_box["y"] + label_box["height"] / 2 - canvas_box["y"]})
        tooltip.wait_for(state="visible", timeout=10_000)
        hovered.append((tooltip.locator(".wh-heatmap-tip-name").text_content(), tooltip.get_attribute("data-layer")))
    assert hovered == [(r["layer"], r["layer"]) for r in heatmap["rows"][:-1]]
    assert_nothing_ran(page, frame_element)  # the tooltip held every name in turn

    # The finding names the first layer that went NaN, and its kernel.
    findings = served(base, "findings", run=NAN_RUN)["findings"]
    layer = plugin_logs.NAMED_LAYERS["img"]
    (nan,) = [f for f in findings if f["rule"] == "nonfinite"]
    assert nan["layer"] == layer
    item = frame.locator("[data-testid=finding][data-severity=critical]").first
    item.wait_for(timeout=60_000)
    assert item.get_attribute("data-layer") == layer
    assert item.locator(".wh-where").text_content() == f"{layer} \u00b7 {nan['variable']}"
    assert item.locator(".wh-message").text_content() == nan["message"]
    assert_no_sideways_scroll(frame_element)

    # The layer detail of the layer with the long name and the HTML variable.
    long_layer = plugin_logs.NAMED_LAYERS["long"]
    frame.locator("[data-testid=norm-row]").filter(has_text=plugin_logs.NAMED_VARIABLE).first.click()
    frame.locator("[data-testid=layer-detail]").wait_for(state="visible", timeout=30_000)
    assert frame.locator("[data-testid=layer-title]").text_content() == f"Layer {long_layer}"
    frame.locator("[data-testid=layer-chart] .u-legend").first.wait_for(timeout=30_000)
    assert any(plugin_logs.NAMED_VARIABLE in text for text in frame.locator(".u-legend").all_text_contents())
    variables = frame.locator("[data-testid=hist-variable] option").evaluate_all("os => os.map(o => o.textContent)")
    assert [v for v in variables if v.endswith(plugin_logs.NAMED_VARIABLE)], variables
    frame.locator("[data-testid=histograms] svg path").first.wait_for(timeout=30_000)
    assert_nothing_ran(page, frame_element)
    assert_no_sideways_scroll(frame_element)

    # Every other run, the 1,254-character one last.
    frame.locator("[data-testid=back]").click()
    for run in [r for r in sorted(plugin_logs.NAMED_RUNS) if r != NAN_RUN] + [LONG_RUN]:
        select.select_option(run)
        frame.locator("[data-testid=norm-row]").first.wait_for(timeout=60_000)
        assert select.input_value() == run
        wait_for_heatmap(frame)
        assert_nothing_ran(page, frame_element)
        assert_no_sideways_scroll(frame_element)

    page.wait_for_timeout(500)
    assert not errors, errors  # includes any alert() and any request leaving the server
    page.close()


def test_a_shared_link_to_a_run_with_url_characters_in_its_name(browser, named_tensorboard):  # noqa: F811
    run = plugin_logs.NAMED_RUNS[1]  # quotes, "&", "=", "#" and "%20"
    link = f"&p.weight_health.run={urllib.parse.quote(run, safe='')}"
    page, frame, errors = open_tab(browser, named_tensorboard, link)
    frame.locator("[data-testid=norm-row]").first.wait_for(timeout=60_000)
    assert frame.locator("[data-testid=run-select]").input_value() == run
    assert_nothing_ran(page, page.locator("iframe").element_handle())
    assert not errors, errors
    page.close()
