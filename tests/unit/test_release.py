"""Release engineering: one version everywhere, the chart's version moves with the chart,
GitOps examples pin a release and are complete, every environment variable is documented.
"""

from __future__ import annotations

import importlib.util
import re
import shutil
import subprocess
import tomllib
from pathlib import Path
from types import ModuleType

import pytest
import yaml

from juliarun_operator import cli, envvars

REPO = Path(__file__).resolve().parents[2]
CHART = REPO / "charts" / "juliarun-operator"
VERSION = tomllib.loads((REPO / "pyproject.toml").read_text())["project"]["version"]
# The newest release: the first `## [x.y.z]` of CHANGELOG.md. What is built from this checkout
# names VERSION; what names a release in Git (the GitOps examples, the production install's
# image and tag) names RELEASE, which must exist as the tag v<RELEASE>.
RELEASE = re.search(r"^## \[(\d[^\]]*)\]", (REPO / "CHANGELOG.md").read_text(), re.MULTILINE).group(1)
CHART_YAML = yaml.safe_load((CHART / "Chart.yaml").read_text())


def read(path: str) -> str:
    return (REPO / path).read_text()


# --- one version ------------------------------------------------------------------------


def test_package_and_cli_report_pyprojects_version(capsys):
    import juliarun_operator

    assert juliarun_operator.__version__ == VERSION, "reinstall (make setup) after changing the version"
    assert cli.main(["--version"]) == 0
    assert capsys.readouterr().out == f"juliarun {VERSION}\n"


def test_chart_app_version_and_image_follow_pyproject():
    assert CHART_YAML["appVersion"] == VERSION
    images = yaml.safe_load(CHART_YAML["annotations"]["artifacthub.io/images"])
    assert [i["image"] for i in images] == [f"juliarun-operator:{VERSION}"]


# Every other place that names the release: (files, pattern whose group is the version,
# what the group must be). Each pattern must match at least once, so a reworded file
# cannot silently drop out of the check.
PLACES = [
    ("deploy/kustomization.yaml", r'newTag: "([^"]+)"', VERSION),
    ("deploy/deployment.yaml", r'image: "juliarun-operator:([^"]+)"', VERSION),
    ("deploy/*.yaml", r'app\.kubernetes\.io/version: "([^"]+)"', VERSION),
    ("gitops/argocd/application.yaml", r'tag: "([^"]+)"', RELEASE),
    ("gitops/argocd/application.yaml", r"targetRevision: (\S+)", f"v{RELEASE}"),
    ("gitops/flux/operator/helmrelease.yaml", r'tag: "([^"]+)"', RELEASE),
    ("gitops/flux/source.yaml", r"tag: (\S+)", f"v{RELEASE}"),
    ("docs/install.md", r"image\.tag=(\S+)", RELEASE),
    ("docs/install.md", r'newTag: "([^"]+)"', RELEASE),
    ("docs/install.md", r"chart's appVersion \(`([^`]+)`\)", VERSION),
    ("docs/install.md", r"ref=(v[^\s)]+)", f"v{RELEASE}"),
    ("docs/install.md", r"tag `(v[^`]+)`", f"v{RELEASE}"),
    ("docs/install.md", r"dist/juliarun-operator-([0-9][^\s]*)\.tgz", CHART_YAML["version"]),
    ("Dockerfile", r"docker build -t juliarun-operator:(\S+)", VERSION),
]


@pytest.mark.parametrize("pattern, regex, expected", PLACES, ids=[f"{p}:{r}" for p, r, _ in PLACES])
def test_every_place_names_the_current_version(pattern, regex, expected):
    found = [
        (path.relative_to(REPO), m.group(1))
        for path in sorted(REPO.glob(pattern))
        for m in re.finditer(regex, path.read_text(), re.MULTILINE)
    ]
    assert found, f"{pattern}: no match for {regex!r}; update PLACES if the file changed"
    wrong = [(str(p), v) for p, v in found if v != expected]
    assert not wrong, f"expected {expected} (pyproject.toml / Chart.yaml), found {wrong}"


def test_changelog_keeps_an_unreleased_section_and_links():
    text = read("CHANGELOG.md")
    assert "## [Unreleased]" in text
    assert f"[{RELEASE}]: " in text and "[Unreleased]: " in text


def numbers(version: str) -> tuple[int, ...]:
    return tuple(int(n) for n in re.match(r"\d+(?:\.\d+)*", version).group(0).split("."))


def test_the_version_is_the_release_or_a_development_version_after_it():
    """Between releases the checkout calls itself x.y.z.devN, above the last release."""
    after = ".dev" in VERSION and numbers(VERSION) > numbers(RELEASE)
    assert VERSION == RELEASE or after, (VERSION, RELEASE)


def test_each_release_has_one_section_of_each_kind():
    """Keep a Changelog: one `### Added`, one `### Changed`, ... per release."""
    releases = re.split(r"^## ", read("CHANGELOG.md"), flags=re.MULTILINE)[1:]
    for release in releases:
        kinds = re.findall(r"^### (\w+)", release, re.MULTILINE)
        assert len(kinds) == len(set(kinds)), f"{release.splitlines()[0]}: {kinds}"


def git(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(["git", "-C", str(REPO), *args], capture_output=True, text=True, check=False)


def test_the_release_the_gitops_examples_pin_is_in_the_repository():
    """v<RELEASE> is a tag of this repository, and what the examples read from it is there."""
    recorded = yaml.safe_load(read("gitops/releases.yaml"))[f"v{RELEASE}"]
    found = git("rev-parse", "--verify", "--quiet", f"v{RELEASE}^{{commit}}")
    # The tag where tags were fetched (it must name the recorded commit); else the commit itself.
    assert found.returncode != 0 or found.stdout.strip() == recorded, f"v{RELEASE} is not {recorded}"
    assert git("merge-base", "--is-ancestor", recorded, "HEAD").returncode == 0, f"no commit {recorded}"
    tag = recorded
    argo = yaml.safe_load(read("gitops/argocd/application.yaml"))["spec"]["source"]
    flux = [o for _, o in flux_objects()]
    paths = [f"{argo['path']}/Chart.yaml"]
    paths += [o["spec"]["path"].lstrip("./") for o in flux if o["kind"] == "Kustomization"]
    paths += [o["spec"]["chart"]["spec"]["chart"] + "/Chart.yaml" for o in flux if o["kind"] == "HelmRelease"]
    for path in paths:
        assert git("cat-file", "-e", f"{tag}:{path}").returncode == 0, f"{tag} has no {path}"
    released = yaml.safe_load(git("show", f"{tag}:{argo['path']}/Chart.yaml").stdout)
    assert released["appVersion"] == RELEASE  # the image tag the examples set is that release's


def test_the_kubernetes_client_floor_does_not_log_response_bodies():
    """kubernetes<37 logs each response body at DEBUG (client/rest.py), Secrets' data too;
    the floor excludes it, and constraints.txt (what the image and make setup install) is above it."""
    dependencies = tomllib.loads(read("pyproject.toml"))["project"]["dependencies"]
    (spec,) = [d for d in dependencies if d.startswith("kubernetes")]
    floor = re.search(r">=(\d+)", spec).group(1)
    assert int(floor) >= 37, spec
    pinned = re.search(r"^kubernetes==(\S+)$", read("constraints.txt"), re.MULTILINE).group(1)
    assert numbers(pinned) >= numbers(floor) and int(pinned.split(".")[0]) < 38
    import kubernetes.client.rest

    assert "response body" not in Path(kubernetes.client.rest.__file__).read_text()


def test_license_is_the_declared_mit():
    assert tomllib.loads(read("pyproject.toml"))["project"]["license"] == "MIT"
    assert read("LICENSE").startswith("MIT License")
    assert CHART_YAML["annotations"]["artifacthub.io/license"] == "MIT"


# --- the chart's version -----------------------------------------------------------------


def chart_release() -> ModuleType:
    spec = importlib.util.spec_from_file_location("chart_release", REPO / "hack" / "chart-release.py")
    assert spec and spec.loader
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_chart_changes_since_its_release_come_with_a_new_version():
    assert chart_release().problem() is None


def test_the_chart_version_check_catches_an_unbumped_change(tmp_path):
    release = chart_release()
    chart = tmp_path / "chart"
    shutil.copytree(CHART, chart)
    release.record(chart)  # the copy as just released, whether or not the chart is now
    assert release.problem(chart) is None
    notes = chart / "templates" / "NOTES.txt"
    notes.write_text(notes.read_text() + "\nOne more line.\n")
    assert "raise `version`" in release.problem(chart)
    chart_yaml = chart / "Chart.yaml"
    current = release.chart_version(chart)
    major, minor, patch = (int(n) for n in current.split("."))
    bumped = f"{major}.{minor}.{patch + 1}"
    chart_yaml.write_text(chart_yaml.read_text().replace(f"version: {current}", f"version: {bumped}"))
    assert release.problem(chart) is None
    chart_yaml.write_text(chart_yaml.read_text().replace(f"version: {bumped}", "version: 0.0.1"))
    assert "lower than the released" in release.problem(chart)


def test_released_chart_is_not_packaged():
    assert ".released" in (CHART / ".helmignore").read_text().splitlines()


# --- Artifact Hub --------------------------------------------------------------------------


def test_artifacthub_crds_are_the_charts_crds():
    listed = {
        (c["kind"], c["name"], c["version"])
        for c in yaml.safe_load(CHART_YAML["annotations"]["artifacthub.io/crds"])
    }
    shipped = set()
    for path in (CHART / "crds").glob("*.yaml"):
        for crd in yaml.safe_load_all(path.read_text()):
            for version in crd["spec"]["versions"]:
                shipped.add((crd["spec"]["names"]["kind"], crd["metadata"]["name"], version["name"]))
    assert listed == shipped


def test_artifacthub_example_is_the_batch_example():
    (example,) = yaml.safe_load(CHART_YAML["annotations"]["artifacthub.io/crdsExamples"])
    assert example == yaml.safe_load(read("examples/julia-batch.yaml"))


def test_artifacthub_changes_are_well_formed():
    changes = yaml.safe_load(CHART_YAML["annotations"]["artifacthub.io/changes"])
    kinds = {"added", "changed", "deprecated", "removed", "fixed", "security"}
    assert changes and all(c["kind"] in kinds and c["description"] for c in changes)


# --- GitOps ----------------------------------------------------------------------------------


def flux_objects() -> list[tuple[Path, dict]]:
    return [
        (path, doc)
        for path in sorted((REPO / "gitops" / "flux").rglob("*.yaml"))
        for doc in yaml.safe_load_all(path.read_text())
        if doc
    ]


def ignored_by(rules: str, path: str) -> bool:
    """Whether a GitRepository's `ignore` (gitignore syntax; the forms used here: /x, /x/, !...)
    drops the repository path `path` (e.g. "charts/juliarun-operator")."""
    ignored = False
    for rule in rules.splitlines():
        rule = rule.strip()
        if not rule or rule.startswith("#"):
            continue
        negate = rule.startswith("!")
        pattern = rule.lstrip("!").strip("/")
        top = path.strip("./").split("/")[0]
        if pattern in ("*", top):
            ignored = not negate
    return ignored


def test_flux_example_is_complete_and_pinned():
    objs = flux_objects()
    by_kind: dict[str, dict[str, dict]] = {}
    for _, obj in objs:
        by_kind.setdefault(obj["kind"], {})[obj["metadata"]["name"]] = obj
    (source,) = by_kind["GitRepository"].values()
    assert source["spec"]["ref"] == {"tag": f"v{RELEASE}"}, "pin a release tag, not a branch"
    for kustomization in by_kind["Kustomization"].values():
        spec = kustomization["spec"]
        assert spec["sourceRef"]["name"] in by_kind["GitRepository"]
        path = spec["path"].lstrip("./")
        assert (REPO / path).is_dir(), f"{kustomization['metadata']['name']}: {path} is not in the repository"
        assert not ignored_by(source["spec"]["ignore"], path), f"the GitRepository ignores {path}"
        for dependency in spec.get("dependsOn", []):
            assert dependency["name"] in by_kind["Kustomization"], f"dependsOn {dependency['name']}: not here"
    (release,) = by_kind["HelmRelease"].values()
    chart = release["spec"]["chart"]["spec"]
    assert chart["sourceRef"]["name"] in by_kind["GitRepository"]
    assert (REPO / chart["chart"] / "Chart.yaml").is_file()
    assert not ignored_by(source["spec"]["ignore"], chart["chart"])
    # The HelmRelease is applied by a Kustomization of this repository.
    applies = {k["spec"]["path"].lstrip("./") for k in by_kind["Kustomization"].values()}
    release_path = next(p for p, o in objs if o["kind"] == "HelmRelease").parent.relative_to(REPO)
    assert str(release_path) in applies


def test_ignore_rules_as_flux_reads_them():
    rules = "/*\n!/charts/\n"
    assert not ignored_by(rules, "charts/juliarun-operator")
    assert ignored_by(rules, "gitops/flux/jobs")


def test_gitops_installs_send_jobs_to_the_documented_juliarun_namespace():
    documented = re.search(r"--set juliarun\.namespace=(\S+)", read("docs/install.md")).group(1)
    argo = yaml.safe_load(read("gitops/argocd/application.yaml"))
    flux = yaml.safe_load(read("gitops/flux/operator/helmrelease.yaml"))
    assert argo["spec"]["source"]["helm"]["valuesObject"]["juliarun"]["namespace"] == documented
    assert flux["spec"]["values"]["juliarun"]["namespace"] == documented


# --- environment variables ---------------------------------------------------------------------

# How the package reads a variable: os.environ / a mapping called env or ENV, or envvars' helpers.
READ = re.compile(
    r"(?:\b(?:ENV|env|environ)\.get\(|\b(?:ENV|env|environ)\[|\benv_(?:int|float|str|list)\(|"
    r'\b_env_list\()\s*"([A-Z][A-Z0-9_]+)"'
)


def test_the_list_of_variables_is_what_the_code_reads():
    # The package only: the development tools (devtools/) document their variables themselves.
    package = REPO / "operator" / "juliarun_operator"
    read_in_code = {name for path in package.rglob("*.py") for name in READ.findall(path.read_text())}
    assert read_in_code == set(envvars.KNOWN), (
        f"read but not listed in envvars.py: {sorted(read_in_code - set(envvars.KNOWN))}; "
        f"listed but not read: {sorted(set(envvars.KNOWN) - read_in_code)}"
    )


def test_every_variable_is_documented():
    install, readme = read("docs/install.md"), read("README.md")
    for name in envvars.ALL:
        assert f"| `{name}` |" in install, f"docs/install.md: no row for {name}"
        assert f"`{name}" in readme, f"README.md does not mention {name}"
    for name in envvars.JOB:
        assert name in readme, f"README.md does not mention {name}"


def test_the_chart_sets_only_variables_the_operator_reads():
    workload = (CHART / "templates" / "workload.yaml").read_text()
    set_by_chart = set(re.findall(r"- name: ([A-Z][A-Z0-9_]+)", workload))
    assert set_by_chart and set_by_chart <= set(envvars.ALL), set_by_chart - set(envvars.ALL)


@pytest.mark.parametrize(
    "value, reader, default, expected",
    [
        (None, envvars.env_float, 10.0, 10.0),
        ("", envvars.env_float, 10.0, 10.0),
        (" 2.5 ", envvars.env_float, 10.0, 2.5),
        ("7", envvars.env_int, 500, 7),
    ],
)
def test_env_numbers(value, reader, default, expected):
    name = "JULIARUN_SYNC_INTERVAL" if reader is envvars.env_float else "WORKERS"
    environ = {} if value is None else {name: value}
    assert reader(name, default, environ) == expected


@pytest.mark.parametrize(
    "reader, name, value, says",
    [
        (envvars.env_float, "JULIARUN_SYNC_INTERVAL", "abc", "expected a number"),
        (envvars.env_int, "WORKERS", "x", "expected a whole number"),
        (envvars.env_int, "METRICS_PORT", "80.5", "expected a whole number"),
    ],
)
def test_a_bad_number_names_its_variable(reader, name, value, says):
    with pytest.raises(envvars.EnvVarError) as info:
        reader(name, 1, {name: value})
    assert str(info.value) == f"environment variable {name}={value!r}: {says}"


def test_env_list_and_unlisted_names():
    assert envvars.env_list("WATCH_NAMESPACES", {"WATCH_NAMESPACES": " a, ,b "}) == ["a", "b"]
    assert envvars.env_str("LOG_FORMAT", "text", {}) == "text"
    with pytest.raises(KeyError, match="not listed"):
        envvars.env_int("NOT_A_VARIABLE", 1, {})
