"""The chart's alerts and dashboard against what a running operator emits.

One operator (a real process, with the emulator over HTTP, on the real API server) goes
through four phases while its /metrics is scraped every half second: healthy jobs; its status
writes denied by an admission policy; JuliaRun refusing every submit; JuliaRun gone. Then:

- every metric, label and matched label value the rules and the dashboard use is in those
  scrapes (so a rule cannot match a series or outcome the code never emits);
- promtool checks the rules, and runs them on the scraped series: nothing fires while the
  operator is healthy, and each phase fires its alert.
"""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import pytest
import yaml

from juliarun_dev import devcluster

from harness import Emulator, Kube, Operator, apply_crds, deny_status_writes, job, namespace_name, wait_for

pytestmark = pytest.mark.integration

REPO = Path(__file__).resolve().parents[2]
CHART = REPO / "charts" / "juliarun-operator"
DASHBOARD = json.loads((CHART / "files" / "grafana-dashboard.json").read_text())
SCRAPE = 0.5  # seconds between scrapes, in real time
# The scrapes are handed to promtool this far apart, so minutes of alerting pass in seconds.
# 30x: the test operator's health check every 2 s real time is one a minute in promtool's.
STEP = "15s"
STEP_SECONDS = 15
# What Prometheus adds to every series of the target (the ServiceMonitor's namespace).
TARGET = {"namespace": "ops"}
# The rule's durations for this run (values of the chart): shorter than the defaults so that
# the phases take seconds; the fixed ones (status writes 10m, submits 5m) are the chart's.
RULE_VALUES = ("metrics.prometheusRule.unreachableFor=3m", "metrics.prometheusRule.stuckFor=10m")
# (metric, label, value) the rules or the dashboard match that the operator does not emit yet.
# While one is here its absence is allowed; once it is emitted the test fails until it is
# removed, so the list cannot go stale. (Empty: the operator emits all of them.)
PENDING: set[tuple[str, str, str]] = set()


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
    args = [str(helm), "template", "jro", str(package), "--set", "metrics.prometheusRule.enabled=true"]
    for value in RULE_VALUES:
        args += ["--set", value]
    rendered = subprocess.run(args, check=True, env=env, capture_output=True, text=True).stdout
    (rule,) = [o for o in yaml.safe_load_all(rendered) if o and o["kind"] == "PrometheusRule"]
    return rule["spec"]


def alerts(rules: dict) -> dict[str, dict]:
    return {r["alert"]: r for g in rules["groups"] for r in g["rules"]}


def write_yaml(path: Path, data: object) -> Path:
    path.write_text(yaml.safe_dump(data, sort_keys=False))
    return path


# --- the scrapes ----------------------------------------------------------------------------

SAMPLE = re.compile(r"^([a-zA-Z_:][a-zA-Z0-9_:]*)(?:\{(.*)\})? (\S+)$")
LABEL = re.compile(r'(\w+)="((?:[^"\\]|\\.)*)"')


def parse(text: str) -> dict[str, float]:
    """A Prometheus text page: series (name{labels}, labels sorted) -> value."""
    samples = {}
    for line in text.splitlines():
        m = SAMPLE.match(line)
        if m:
            name, labels, value = m.groups()
            pairs = sorted(LABEL.findall(labels or ""))
            key = name + ("{" + ",".join(f'{k}="{v}"' for k, v in pairs) + "}" if pairs else "")
            samples[key] = float(value)
    return samples


def name_and_labels(series: str) -> tuple[str, dict[str, str]]:
    name, _, rest = series.partition("{")
    return name, dict(LABEL.findall(rest))


@dataclass
class Scrapes:
    pages: list[dict[str, float]] = field(default_factory=list)
    types: dict[str, str] = field(default_factory=dict)
    phases: dict[str, int] = field(default_factory=dict)  # phase -> index of its last scrape

    def series(self) -> set[str]:
        return {s for page in self.pages for s in page}


class Scraper:
    def __init__(self, operator: Operator):
        self.operator, self.scrapes = operator, Scrapes()

    def scrape(self) -> None:
        text = self.operator.metrics()
        self.scrapes.types.update(re.findall(r"^# TYPE (\S+) (\S+)$", text, re.MULTILINE))
        self.scrapes.pages.append(parse(text))

    def phase(self, name: str, until: Callable[[], object], at_least: float, timeout: float = 120) -> None:
        """Scrape every SCRAPE seconds, for `at_least` seconds and until `until()` holds."""
        start = time.monotonic()
        while True:
            tick = time.monotonic()
            self.scrape()
            done = until()  # every time: it may act (create objects) as well as check
            if done and time.monotonic() - start >= at_least:
                break
            assert time.monotonic() - start < timeout, f"phase {name}: not done after {timeout} s"
            time.sleep(max(0.0, SCRAPE - (time.monotonic() - tick)))
        self.scrapes.phases[name] = len(self.scrapes.pages) - 1


@pytest.fixture(scope="module")
def scrapes(control_plane, tmp_path_factory) -> Scrapes:
    workdir = tmp_path_factory.mktemp("monitoring")
    apply_crds(control_plane)
    # A create delay long enough that scrapes see jobs Pending.
    emulator = Emulator(workdir, "--create-delay", "2", "--run-time", "1")
    emulator.start()
    kube = Kube(control_plane)
    healthy, denied, refused = (namespace_name(p) for p in ("jr-mon-ok", "jr-mon-denied", "jr-mon-refused"))
    for ns in (healthy, denied, refused):
        kube.namespace(ns)
    operator = Operator(workdir, control_plane.kubeconfig, emulator, watch=[healthy, denied, refused])
    operator.start()
    scraper = Scraper(operator)
    remove_policy: Callable[[], None] | None = None
    try:
        # 1. Healthy: jobs go Pending, Running, Completed; every call ok.
        kube.apply(
            healthy, *(job(f"ok{i}", "JuliaBatch", runVolume="jobs", startScript="a.jl") for i in range(3))
        )
        done = lambda: all(kube.status(healthy, f"ok{i}").get("phase") == "Completed" for i in range(3))  # noqa: E731
        scraper.phase("healthy", done, at_least=10)

        # 2. Status writes refused by the API server (403) for 14 synthetic minutes: a new
        # object every few seconds keeps the failures coming (each object backs off alone).
        kube.apply(denied, job("probe", "JuliaBatch", runVolume="jobs", startScript="p.jl"))
        remove_policy = deny_status_writes(control_plane, denied)
        wait_for(
            "the policy to refuse a status write",
            lambda: "denied by the test" in control_plane.kubectl(
                "patch", "jrj", "probe", "-n", denied, "--subresource=status", "--type=merge",
                "-p", '{"status":{"phase":"Pending"}}', "--dry-run=server", check=False,
            ).stderr,
            30,
        )  # fmt: skip
        created = iter(range(1000))
        last_created = [0.0]

        def keep_creating() -> bool:
            if time.monotonic() - last_created[0] > 2:
                kube.apply(
                    denied, job(f"d{next(created)}", "JuliaBatch", runVolume="jobs", startScript="d.jl")
                )
                last_created[0] = time.monotonic()
            return True

        scraper.phase("denied", keep_creating, at_least=14 * 60 / STEP_SECONDS * SCRAPE + 2)
        remove_policy()
        remove_policy = None

        # 3. JuliaRun refuses every submit, for 7 synthetic minutes.
        emulator.set_faults({"submitJob": {"error_rate": 1.0}})
        kube.apply(refused, job("nope", "JuliaBatch", runVolume="jobs", startScript="n.jl"))
        scraper.phase("refused", lambda: True, at_least=7 * 60 / STEP_SECONDS * SCRAPE + 2)
        emulator.clear_faults()

        # 4. JuliaRun gone: every call fails to connect, for 11 synthetic minutes (the last
        # successful call leaves the 5m window after 5 of them, then unreachableFor runs).
        emulator.kill(signal.SIGTERM)
        scraper.phase("gone", lambda: True, at_least=11 * 60 / STEP_SECONDS * SCRAPE + 2)
    finally:
        try:
            if remove_policy:
                remove_policy()
            emulator.start()  # deleting the objects deletes their JuliaRun jobs
            kube.clean_up(healthy, denied, refused)
        finally:
            operator.kill(signal.SIGTERM)
            emulator.kill(signal.SIGTERM)
    return scraper.scrapes


# --- what the rules and the dashboard use ----------------------------------------------------


def dashboard_queries() -> list[tuple[str, str]]:
    return [
        (f"{panel['title']} {target['refId']}", target["expr"])
        for panel in DASHBOARD["panels"]
        for target in panel["targets"]
    ]


def exprs(rules: dict) -> list[str]:
    return [r["expr"] for g in rules["groups"] for r in g["rules"]] + [e for _, e in dashboard_queries()]


METRIC = re.compile(r"\b(juliarun_[a-z_]+)\b(?:\{([^}]*)\})?")
MATCHER = re.compile(r'(\w+)\s*(=~|!~|!=|=)\s*"([^"]*)"')
GROUPING = re.compile(r"\b(?:by|without)\s*\(([^)]*)\)")


def used(rules: dict) -> dict[str, dict[str, set[str]]]:
    """metric -> label -> the values it must take at least once (=, and each alternative of
    =~); an empty set where the label only has to exist (grouping, !=, $variables)."""
    needs: dict[str, dict[str, set[str]]] = {}
    for expr in exprs(rules):
        grouping = {lab.strip() for g in GROUPING.findall(expr) for lab in g.split(",") if lab.strip()}
        for name, selector in METRIC.findall(expr):
            labels = needs.setdefault(name, {})
            for label, op, value in MATCHER.findall(selector):
                if label in TARGET:
                    continue
                values = labels.setdefault(label, set())
                if op == "=" and "$" not in value:
                    values.add(value)
                elif op == "=~" and re.fullmatch(r"[\w|]+", value):
                    values.update(value.split("|"))
            for label in grouping - {"le", "namespace"}:
                labels.setdefault(label, set())
    return needs


def base_name(name: str, types: dict[str, str]) -> str:
    stem = re.sub(r"_(bucket|sum|count)$", "", name)
    return stem if types.get(stem) == "histogram" else name


def test_every_series_label_and_value_the_rules_and_dashboard_use_is_emitted(rules, scrapes):
    emitted: dict[str, dict[str, set[str]]] = {}
    for series in scrapes.series():
        name, labels = name_and_labels(series)
        for label, value in labels.items():
            emitted.setdefault(name, {}).setdefault(label, set()).add(value)
        emitted.setdefault(name, {})
    missing, arrived = [], sorted(p for p in PENDING if p[2] in emitted.get(p[0], {}).get(p[1], set()))
    for name, labels in sorted(used(rules).items()):
        if name not in emitted and base_name(name, scrapes.types) not in scrapes.types:
            missing.append(f"{name} (no such series)")
            continue
        for label, values in sorted(labels.items()):
            seen = emitted.get(name, {}).get(label)
            if seen is None:
                missing.append(f"{name}: no label {label!r}")
                continue
            absent = sorted(v for v in values - seen if (name, label, v) not in PENDING)
            if absent:
                missing.append(f"{name}: {label} never {absent} (seen {sorted(seen)})")
    assert not missing, "used by the rules or the dashboard, not in any scrape:\n" + "\n".join(missing)
    assert not arrived, f"now emitted, remove from PENDING: {arrived}"


def test_rules_pass_promtool_check(promtool, rules, tmp_path):
    result = run(promtool, "check", "rules", str(write_yaml(tmp_path / "rules.yaml", rules)))
    assert result.returncode == 0, result.stdout + result.stderr
    assert f"SUCCESS: {len(alerts(rules))} rules found" in result.stdout


def input_series(scrapes: Scrapes) -> list[dict]:
    """Each series of the scrapes, one value per scrape (`_` where it was absent), with the
    labels Prometheus adds."""
    rows = []
    for series in sorted(scrapes.series()):
        name, labels = name_and_labels(series)
        labels = {**labels, **TARGET}
        selector = name + "{" + ",".join(f'{k}="{v}"' for k, v in sorted(labels.items())) + "}"
        values = " ".join(f"{page[series]:g}" if series in page else "_" for page in scrapes.pages)
        rows.append({"series": selector, "values": values})
    return rows


# At the end of each phase, the alerts that fire. At the end of the healthy phase: none.
FIRES = {
    "healthy": set(),
    # Every status write refused: the objects are handled again and again (retry).
    "denied": {"JuliaRunStatusWritesFailing", "JuliaRunOperatorForbidden", "JuliaRunJobsStuckReconciling"},
    "refused": {"JuliaRunSubmitErrors"},
    "gone": {"JuliaRunUnreachable", "JuliaRunConnectionsFailing"},
}


def test_rules_fire_on_the_scraped_series_as_documented(promtool, rules, scrapes, tmp_path):
    # Labels are what these tests compare: the annotations (checked above by `check rules`)
    # are left out, as promtool would otherwise need their rendered text too.
    bare = {
        "groups": [
            {**g, "rules": [{k: v for k, v in r.items() if k != "annotations"} for r in g["rules"]]}
            for g in rules["groups"]
        ]
    }
    write_yaml(tmp_path / "rules.yaml", bare)
    severity = {name: r["labels"]["severity"] for name, r in alerts(rules).items()}
    checks = []
    for phase, firing in FIRES.items():
        at = f"{scrapes.phases[phase] * STEP_SECONDS}s"
        names = set(severity) if phase == "healthy" else firing
        for name in sorted(names):
            expected = [{"exp_labels": {**TARGET, "severity": severity[name]}}] if name in firing else []
            checks.append({"eval_time": at, "alertname": name, "exp_alerts": expected})
    test = {"interval": STEP, "input_series": input_series(scrapes), "alert_rule_test": checks}
    write_yaml(
        tmp_path / "tests.yaml", {"rule_files": ["rules.yaml"], "evaluation_interval": STEP, "tests": [test]}
    )
    result = run(promtool, "test", "rules", str(tmp_path / "tests.yaml"))
    # On failure: the series the rules read (not the histogram), one value per scrape.
    named = {n for e in exprs(rules) for n, _ in METRIC.findall(e)}
    shown = [
        f"{r['series']}: {r['values']}" for r in test["input_series"] if r["series"].split("{")[0] in named
    ]
    phases = ", ".join(f"{p} ends at {i * STEP_SECONDS}s" for p, i in scrapes.phases.items())
    assert result.returncode == 0, "\n".join([result.stdout + result.stderr, phases, *shown])


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
            used_vars = set(re.findall(r"\$(\w+)", target["expr"]))
            assert used_vars <= variables, f"{panel['title']}: undefined variables {used_vars - variables}"
