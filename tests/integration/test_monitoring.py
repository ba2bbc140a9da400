"""The chart's alerts and dashboard: the rules pass promtool (syntax, and alerts firing on
made-up series as documented), the dashboard's queries parse, and every metric either names
is exported by a running operator on /metrics."""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import uuid
from pathlib import Path

import pytest
import yaml

from juliarun_dev import devcluster

from harness import Emulator, Kube, Operator, apply_crds, job, wait_for

pytestmark = pytest.mark.integration

REPO = Path(__file__).resolve().parents[2]
CHART = REPO / "charts" / "juliarun-operator"
DASHBOARD = json.loads((CHART / "files" / "grafana-dashboard.json").read_text())

# Metrics the rules and the dashboard use that the operator does not export yet. While a
# name is here its absence is allowed; once the operator exports it this test fails until
# the name is removed, so the list cannot go stale. (Empty: the core exports them all.)
PENDING: set[str] = set()


def run(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run(args, capture_output=True, text=True, timeout=120)


@pytest.fixture(scope="module")
def promtool() -> str:
    """promtool, built through the Go module proxy on first use (hack/promtool/build.sh)."""
    result = subprocess.run(
        ["bash", str(REPO / "hack" / "promtool" / "build.sh")],
        stdout=subprocess.PIPE,
        text=True,
        timeout=1200,
    )
    assert result.returncode == 0, "hack/promtool/build.sh failed (see its output above)"
    return result.stdout.strip().splitlines()[-1]


@pytest.fixture(scope="module")
def rules(tmp_path_factory) -> dict:
    """The PrometheusRule's spec as the packaged chart renders it (a Prometheus rules file)."""
    helm = devcluster.ensure_binaries()["helm"]
    home = tmp_path_factory.mktemp("helm")
    env = {
        **os.environ,
        "HELM_CACHE_HOME": str(home),
        "HELM_CONFIG_HOME": str(home),
        "HELM_DATA_HOME": str(home),
    }
    out = tmp_path_factory.mktemp("chart")
    subprocess.run(
        [str(helm), "package", str(CHART), "--destination", str(out)],
        check=True,
        env=env,
        capture_output=True,
    )
    (package,) = out.glob("*.tgz")
    rendered = subprocess.run(
        [str(helm), "template", "jro", str(package), "--set", "metrics.prometheusRule.enabled=true"],
        check=True,
        env=env,
        capture_output=True,
        text=True,
    ).stdout
    (rule,) = [o for o in yaml.safe_load_all(rendered) if o and o["kind"] == "PrometheusRule"]
    return rule["spec"]


def write_yaml(path: Path, data: object) -> Path:
    path.write_text(yaml.safe_dump(data, sort_keys=False))
    return path


def test_rules_pass_promtool_check(promtool, rules, tmp_path):
    result = run(promtool, "check", "rules", str(write_yaml(tmp_path / "rules.yaml", rules)))
    assert result.returncode == 0, result.stdout + result.stderr
    assert "SUCCESS: 5 rules found" in result.stdout


def firing(alert: str, at: str, series: list[dict], fires: bool, **labels: str) -> dict:
    """A promtool unit test: `series` (1 minute apart), and at `at` the alert fires or not."""
    expected = (
        [{"exp_labels": {"severity": "critical" if alert == "JuliaRunUnreachable" else "warning", **labels}}]
        if fires
        else []
    )
    return {
        "interval": "1m",
        "input_series": series,
        "alert_rule_test": [{"eval_time": at, "alertname": alert, "exp_alerts": expected}],
    }


def calls(operation: str, outcome: str, values: str) -> dict:
    return {
        "series": f'juliarun_calls_total{{namespace="ops",operation="{operation}",outcome="{outcome}"}}',
        "values": values,
    }


# (alert, eval time, series, fires). Values: '0+1x30' grows by one a minute, '5x30' stays.
CASES = {
    "unreachable": (
        "JuliaRunUnreachable",
        "12m",
        [calls("getSystemStatus", "TransportError", "0+2x30"), calls("getSystemStatus", "ok", "40x30")],
        True,
    ),
    "unreachable-not-yet": (
        "JuliaRunUnreachable",
        "4m",
        [calls("getSystemStatus", "TransportError", "0+2x30"), calls("getSystemStatus", "ok", "40x30")],
        False,
    ),
    "some-calls-succeed": (
        "JuliaRunUnreachable",
        "12m",
        [calls("getSystemStatus", "TransportError", "0+2x30"), calls("getAllJobInfo", "ok", "0+6x30")],
        False,
    ),
    "status-writes-failing": (
        "JuliaRunStatusWritesFailing",
        "15m",
        [{"series": 'juliarun_status_write_failures_total{namespace="ops"}', "values": "0+3x30"}],
        True,
    ),
    "status-writes-ok": (
        "JuliaRunStatusWritesFailing",
        "15m",
        [{"series": 'juliarun_status_write_failures_total{namespace="ops"}', "values": "2x30"}],
        False,
    ),
    "stuck-pending": (
        "JuliaRunJobsStuckPending",
        "35m",
        [{"series": 'juliarun_jobs{namespace="ops",phase="Pending"}', "values": "3x40"}],
        True,
    ),
    "pending-briefly": (
        "JuliaRunJobsStuckPending",
        "35m",
        [{"series": 'juliarun_jobs{namespace="ops",phase="Pending"}', "values": "3x10 0x30"}],
        False,
    ),
    "stuck-reconciling": (
        "JuliaRunJobsStuckReconciling",
        "45m",
        [
            {
                "series": 'juliarun_reconciles_total{namespace="ops",handler="ensure",outcome="retry"}',
                "values": "0+1x60",
            }
        ],
        True,
    ),
    "reconciled": (
        "JuliaRunJobsStuckReconciling",
        "45m",
        [
            {
                "series": 'juliarun_reconciles_total{namespace="ops",handler="ensure",outcome="submitted"}',
                "values": "0+1x60",
            }
        ],
        False,
    ),
    "submit-errors": ("JuliaRunSubmitErrors", "8m", [calls("submitJob", "ApiError", "0 0 1x20")], True),
    "submits-ok": ("JuliaRunSubmitErrors", "8m", [calls("submitJob", "ok", "0+5x20")], False),
}


def test_alerts_fire_when_documented(promtool, rules, tmp_path):
    # Labels are what these tests compare: the annotations (checked above by `check rules`)
    # are left out, as promtool would otherwise need their rendered text too.
    bare = {
        "groups": [
            {
                **group,
                "rules": [{k: v for k, v in rule.items() if k != "annotations"} for rule in group["rules"]],
            }
            for group in rules["groups"]
        ]
    }
    write_yaml(tmp_path / "rules.yaml", bare)
    tests = [
        firing(alert, at, series, fires, **({"namespace": "ops"} if fires else {}))
        for alert, at, series, fires in CASES.values()
    ]
    write_yaml(
        tmp_path / "tests.yaml", {"rule_files": ["rules.yaml"], "evaluation_interval": "1m", "tests": tests}
    )
    result = run(promtool, "test", "rules", str(tmp_path / "tests.yaml"))
    assert result.returncode == 0, result.stdout + result.stderr


def dashboard_queries() -> list[tuple[str, str]]:
    return [
        (f"{panel['title']} {target['refId']}", target["expr"])
        for panel in DASHBOARD["panels"]
        for target in panel["targets"]
    ]


def test_dashboard_queries_parse(promtool, tmp_path):
    # promtool parses recording rules' PromQL: one rule per query, the variable filled in.
    records = [
        {"record": f"dashboard:query_{i}", "expr": expr.replace("$namespace", ".*")}
        for i, (_, expr) in enumerate(dashboard_queries())
    ]
    path = write_yaml(tmp_path / "dashboard.yaml", {"groups": [{"name": "dashboard", "rules": records}]})
    result = run(promtool, "check", "rules", str(path))
    assert result.returncode == 0, result.stdout + result.stderr


def test_dashboard_is_a_grafana_dashboard():
    assert DASHBOARD["uid"] == "juliarun-operator" and DASHBOARD["panels"]
    variables = {v["name"] for v in DASHBOARD["templating"]["list"]}
    for panel in DASHBOARD["panels"]:
        assert panel["datasource"]["uid"] == "${datasource}" and panel["targets"], panel["title"]
        for target in panel["targets"]:
            used = set(re.findall(r"\$(\w+)", target["expr"]))
            assert used <= variables, f"{panel['title']}: undefined variables {used - variables}"


def named_metrics(rules: dict) -> set[str]:
    exprs = [rule["expr"] for group in rules["groups"] for rule in group["rules"]]
    exprs += [expr for _, expr in dashboard_queries()]
    return {name for expr in exprs for name in re.findall(r"\bjuliarun_[a-z_]+\b", expr)}


@pytest.fixture(scope="module")
def exported(control_plane, tmp_path_factory) -> dict[str, str]:
    """Metric name -> type, from the /metrics of an operator that ran a job."""
    workdir = tmp_path_factory.mktemp("monitoring")
    apply_crds(control_plane)
    emulator = Emulator(workdir, "--create-delay", "0.2", "--run-time", "1")
    emulator.start()
    kube = Kube(control_plane)
    namespace = kube.namespace(f"jr-metrics-{uuid.uuid4().hex[:6]}")
    operator = Operator(workdir, control_plane.kubeconfig, emulator, watch=[namespace])
    operator.start()
    try:
        kube.apply(namespace, job("hello", "JuliaBatch", runVolume="jobs", startScript="hello.jl"))
        wait_for(
            "the job to complete", lambda: kube.status(namespace, "hello").get("phase") == "Completed", 60
        )

        def calls_made() -> str | None:
            text = operator.metrics()
            return text if "juliarun_calls_total{" in text else None

        text = wait_for("the operator's first JuliaRun calls on /metrics", calls_made, 60)
    finally:
        try:
            kube.clean_up(namespace)
        finally:
            operator.kill(signal.SIGTERM)
            emulator.kill(signal.SIGTERM)
    return dict(re.findall(r"^# TYPE (\S+) (\S+)$", text, re.MULTILINE))


def test_every_metric_named_is_exported(rules, exported):
    names = named_metrics(rules)
    histograms = {name for name, kind in exported.items() if kind == "histogram"}
    resolved = {
        re.sub(r"_(bucket|sum|count)$", "", n) if re.sub(r"_(bucket|sum|count)$", "", n) in histograms else n
        for n in names
    }
    missing = resolved - set(exported) - PENDING
    assert not missing, f"named by the rules or the dashboard, not on /metrics: {sorted(missing)}"
    assert resolved >= PENDING, "PENDING names a metric the rules and dashboard do not use"
    assert not PENDING & set(exported), (
        f"now exported, remove from PENDING: {sorted(PENDING & set(exported))}"
    )
