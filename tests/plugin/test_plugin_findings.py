"""The findings route: the diagnosis of real runs, one of which goes NaN."""

import json

import pytest

from support import plugin_logs
from support.plugin_calls import plugin_ok
from tb_weightnorm import diagnosis

ok = plugin_ok

NAN_RUN = plugin_logs.NAN_RUN


def test_a_nan_in_a_kernel_is_a_critical_nonfinite_finding(api_client):
    body = ok(api_client, f"findings?run={NAN_RUN}")
    assert body["runs"] == [NAN_RUN] and body["skipped"] == []
    nonfinite = [f for f in body["findings"] if f["rule"] == "nonfinite"]
    assert nonfinite, body["findings"]
    first = nonfinite[0]
    assert first["run"] == NAN_RUN
    assert first["severity"] == "critical"
    # The NaN was set before batch NAN_AT_BATCH (0-based): the weights after
    # that step's update are the first logged with it.
    assert first["first_step"] == plugin_logs.NAN_AT_BATCH + 1
    assert first["last_step"] == plugin_logs.NAN_STEPS
    assert first["layer"] and first["message"]
    assert set(first) == {"run"} | set(diagnosis.Finding.__dataclass_fields__)


def test_findings_of_every_run_most_severe_first(api_client):
    body = ok(api_client, "findings")
    assert body["runs"] == sorted(
        [plugin_logs.CNN_RUN, plugin_logs.CNN_HIGH_RUN, plugin_logs.LOOP_RUN, NAN_RUN, plugin_logs.HOSTILE_RUN]
    )
    ranks = [diagnosis.severity_rank(f["severity"]) for f in body["findings"]]
    assert ranks == sorted(ranks, reverse=True)
    assert any(f["run"] == NAN_RUN and f["rule"] == "nonfinite" for f in body["findings"])
    for finding in body["findings"]:
        for key in ("value", "threshold"):
            assert finding[key] is None or isinstance(finding[key], (int, float)) or finding[key] in (
                "Infinity", "-Infinity"
            )
    # Chosen runs only, each once.
    chosen = ok(api_client, f"findings?run={plugin_logs.LOOP_RUN}&run={NAN_RUN}&run={NAN_RUN}")
    assert chosen["runs"] == [plugin_logs.LOOP_RUN, NAN_RUN]
    assert {f["run"] for f in chosen["findings"]} <= {plugin_logs.LOOP_RUN, NAN_RUN}
    json.dumps(chosen, allow_nan=False)
