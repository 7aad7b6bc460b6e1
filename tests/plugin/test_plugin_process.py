"""Every data route of the plugin served by a real `tensorboard` process under
its default loader (the Rust data server), which reads blobs and tensors
through its own gRPC data provider."""

import json
import urllib.parse

from support import plugin_logs
from support.servers import http_get, tensorboard_process, wait_for_json

CNN, LOOP = plugin_logs.CNN_RUN, plugin_logs.LOOP_RUN
CNN_STEPS = plugin_logs.CNN_EPOCHS * plugin_logs.CNN_BATCHES


def query(**params):
    return urllib.parse.urlencode(params, doseq=True)


def test_every_route_under_the_default_loader(api_logdir):
    with tensorboard_process(api_logdir) as base:
        plugin = base + "/data/plugin/weight_health/"
        # The data server loads in the background: wait for the whole of each run.
        runs = wait_for_json(
            plugin + "runs",
            lambda b: {r["run"]: r["last_step"] for r in b["runs"]}.get(LOOP) == plugin_logs.LOOP_STEPS - 1
            and any(r["run"] == CNN and len(r["kernel_grids"]) == 2 and r["histograms"] for r in b["runs"]),
        )
        cnn = next(r for r in runs["runs"] if r["run"] == CNN)
        assert cnn["layers"] == ["rgb_conv", "deep_conv", "out"] and cnn["histograms"]["bins"] == [plugin_logs.CNN_BINS]

        table = wait_for_json(plugin + "table?" + query(run=LOOP), lambda b: len(b["steps"]) == plugin_logs.LOOP_STEPS)
        assert table["step"] == plugin_logs.LOOP_STEPS - 1

        heatmap = wait_for_json(
            plugin + "heatmap?" + query(run=LOOP, stat="gradient/l2", max_steps=8),
            lambda b: b["logged_steps"] == plugin_logs.LOOP_STEPS,
        )
        assert len(heatmap["steps"]) == 8 and heatmap["rows"][-1]["global"] is True

        series = json.loads(http_get(plugin + "series?" + query(run=LOOP, stat="weight/l2", max_steps=5))[1])
        assert len(series["steps"]) == 5 and len(series["series"]) == len(plugin_logs.LOOP_VARIABLES) + 1

        compare = json.loads(
            http_get(plugin + "compare?" + query(run=[LOOP, CNN], stat="weight/l2", layer=["head", "out"]))[1]
        )
        assert [len(r["series"]) for r in compare["runs"]] == [2, 2]
        assert compare["runs"][0]["missing_layers"] == ["out"]

        histograms = wait_for_json(
            plugin + "histograms?" + query(run=CNN, variable="rgb_cnn/out/kernel", kind="weight"),
            lambda b: b["runs"][0].get("logged_steps") == CNN_STEPS // plugin_logs.CNN_HISTOGRAM_EVERY,
        )
        for h in histograms["runs"][0]["histograms"]:
            assert sum(h["counts"]) == plugin_logs.CNN_VARIABLE_SIZES["rgb_cnn/out/kernel"]

        grids = wait_for_json(
            plugin + "kernel_grids?" + query(run=CNN, variable="rgb_cnn/deep_conv/kernel"),
            lambda b: len(b["images"]) == plugin_logs.CNN_EPOCHS + 1,
        )
        assert grids["mode"] == "diverging" and grids["filters_total"] == 6
        image = grids["images"][-1]
        assert image["step"] == CNN_STEPS
        status, png = http_get(plugin + image["url"])
        assert status == 200 and png.startswith(b"\x89PNG\r\n\x1a\n")
        # The PNG's own header gives its size: IHDR width and height, big-endian.
        assert (int.from_bytes(png[16:20], "big"), int.from_bytes(png[20:24], "big")) == (
            image["width"],
            image["height"],
        )

        findings = json.loads(http_get(plugin + "findings?" + query(run=plugin_logs.NAN_RUN))[1])
        assert any(f["rule"] == "nonfinite" and f["severity"] == "critical" for f in findings["findings"])

        status, body = http_get(plugin + "heatmap?" + query(run="nope", stat="weight/l2"))
        assert status == 404 and "'nope'" in json.loads(body)["error"]
        status, body = http_get(plugin + "kernel_image?" + query(run=CNN, variable="rgb_cnn/deep_conv/kernel"))
        assert status == 400 and "'step'" in json.loads(body)["error"]
