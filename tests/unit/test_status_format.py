"""`meetplugin status`'s formats: Prometheus text that a strict parser takes, metrics and alert
rules in docs/operations.md that match what is printed."""

from __future__ import annotations

import json
import re
from pathlib import Path

from prometheus_client.parser import text_string_to_metric_families

from radicale_meetplugin import status
from radicale_meetplugin.status import Account, ProviderError, Status

OPERATIONS = Path(__file__).resolve().parents[2] / "docs" / "operations.md"


def sample() -> Status:
    return Status(
        state_dir="/var/lib/x",
        now=1_800_000_000.5,
        jobs=2,
        oldest_job_age=61.25,
        jobs_due=1,
        suspects=1,
        letters={"queued": 1, "sent": 3, "failed": 0, "unknown": 0},
        conferences={"active": 4, "failed": 1},
        providers={
            "telemost": ProviderError('unavailable: HTTP 503 "busy"\\ \nnext', 1_799_999_000, True)
        },
        bridge={
            "alice": Account(1_799_999_990.0, None, ""),
            "bob": Account(1_799_990_000.0, 1_799_999_999.0, "CalDAVError: 401"),
        },
    )


def test_prometheus_text_is_strictly_valid_and_round_trips():
    text = status.prometheus(sample())
    names = []
    for line in text.splitlines():
        if line.startswith("# HELP "):
            names.append(line.split()[2])
        elif line.startswith("# TYPE "):
            assert line.split()[2] == names[-1] and line.split()[3] == "gauge"
        else:
            assert line.startswith(names[-1]), line  # samples follow their own HELP/TYPE
    assert len(names) == len(set(names))
    families = {f.name: f for f in text_string_to_metric_families(text)}
    assert set(families) == set(names)
    (error,) = families["meetplugin_provider_last_error_timestamp_seconds"].samples
    assert error.labels["error"] == 'unavailable: HTTP 503 "busy"\\ \nnext'  # escaped, restored
    assert error.labels["pending"] == "true" and error.value == 1_799_999_000
    assert families["meetplugin_oldest_job_age_seconds"].samples[0].value == 61.25
    ok = {
        s.labels["account"]: s.value
        for s in families["meetplugin_bridge_last_success_timestamp_seconds"].samples
    }
    assert ok == {"alice": 1_799_999_990.0, "bob": 1_799_990_000.0}
    letters = {s.labels["state"]: s.value for s in families["meetplugin_letters"].samples}
    assert letters == {"queued": 1, "sent": 3, "failed": 0, "unknown": 0}


def test_findings_decide_the_exit_status_and_show_in_every_format():
    s = sample()
    findings = s.findings()
    assert any("suspect" in f for f in findings)
    assert any("bob" in f and "401" in f for f in findings)
    assert not any("alice" in f for f in findings)
    assert json.loads(status.as_json(s))["findings"] == findings
    assert findings[0] in status.text(s)
    quiet = Status(state_dir="/x", now=1.0)
    assert quiet.findings() == [] and "nothing to look at" in status.text(quiet)


def test_docs_name_every_metric_and_the_alerts_use_only_those():
    doc = OPERATIONS.read_text()
    printed = {
        line.split()[2] for line in status.prometheus(sample()).splitlines() if "# HELP" in line
    }
    documented = set(re.findall(r"^\| `(meetplugin_[a-z_]+)` \|", doc, re.M))
    assert documented == printed
    (rules,) = re.findall(r"```yaml\n(.*?)```", doc, re.S)
    exprs = re.findall(r"^\s+expr: (.+)$", rules, re.M)
    assert len(exprs) >= 3
    used = {m for e in exprs for m in re.findall(r"\bmeetplugin_[a-z_]+", e)}
    assert used and used <= printed
    for metric in (
        "meetplugin_oldest_job_age_seconds",
        "meetplugin_suspects",
        "meetplugin_bridge_last_success_timestamp_seconds",
    ):
        assert metric in used
