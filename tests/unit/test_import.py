"""`juliarun import`'s manifests: one Observe JuliaRunJob per job, the fields JuliaRun does not
report named for a person to fill in, and files written without overwriting any."""

from __future__ import annotations

import pytest
import yaml

from juliarun_dev import gen
from juliarun_operator.cli import importing, parse_args
from juliarun_operator.juliarun import jobtypes as jt
from juliarun_operator.juliarun.client import JobInfo, JobScale, JobStatus

SPEC_FIELDS = gen.spec_schema()["properties"]


def info(name: str, job_type: str, requested: int = 3) -> JobInfo:
    return JobInfo(name, job_type, JobStatus(False, 0, 1, True, False), JobScale(1, requested), [])


def comments(text: str) -> str:
    return "\n".join(line for line in text.splitlines() if line.startswith("#"))


@pytest.mark.parametrize("t", jt.JOB_TYPES.values(), ids=lambda t: t.name)
def test_a_manifest_per_type_holds_what_juliarun_reports_and_names_the_rest(t):
    text = importing.render(info("legacy-1", t.name, requested=4), "JuliaRun namespace ns")
    body = yaml.safe_load(text)
    assert (body["apiVersion"], body["kind"]) == ("juliarun.dev/v1alpha1", "JuliaRunJob")
    assert body["metadata"] == {"name": "legacy-1"}
    expected = {"type": t.name, "jobName": "legacy-1", "managementPolicy": "Observe"}
    assert body["spec"] == ({**expected, "parallelism": 4} if t.scalable else expected)
    assert set(body["spec"]) <= set(SPEC_FIELDS)  # every field is the CRD's
    said = comments(text)
    required = [jt.PARAMETERS[n].field for n in t.required()]
    line = next(c for c in said.splitlines() if c.startswith("#   required: "))
    assert line == "#   required: " + (", ".join(required) or "none")
    for name in t.params:  # every parameter but the workers (parallelism) is named to fill in
        assert (jt.PARAMETERS[name].field in said) == (name != "nworkers")
    assert all(f in SPEC_FIELDS for f in required)
    assert max(len(c) for c in said.splitlines() if c.startswith("#  ")) <= 96  # the lists, wrapped


def test_namespace_and_credentials_are_set_only_when_asked():
    body = yaml.safe_load(importing.render(info("a", "Notebook"), "x", "team-a", "juliarun-team-a"))
    assert body["metadata"] == {"name": "a", "namespace": "team-a"}
    assert body["spec"]["credentialsRef"] == {"name": "juliarun-team-a"}


def test_one_stream_in_name_order_leaving_out_types_no_juliarunjob_has():
    jobs = {n: info(n, t) for n, t in [("web", "Webserver"), ("batch", "JuliaBatch"), ("odd", "Mystery")]}
    items, skipped = importing.manifests(jobs, "JuliaRun namespace ns")
    docs = list(yaml.safe_load_all(importing.stream(items)))
    assert [d["metadata"]["name"] for d in docs] == ["batch", "web"]
    assert skipped == ["job odd has type 'Mystery', which no JuliaRunJob has: not imported"]


def test_files_are_written_one_per_job_and_none_is_overwritten(tmp_path):
    out = tmp_path / "jobs"
    items, _ = importing.manifests({n: info(n, "Webserver") for n in ("a", "b")}, "ns")
    assert importing.write_files(out, items) == [out / "a.yaml", out / "b.yaml"]
    assert yaml.safe_load((out / "a.yaml").read_text())["spec"]["jobName"] == "a"
    # again, with one more job: a.yaml and b.yaml are there, so nothing is written, not even c.yaml
    (out / "a.yaml").write_text("# edited by a person\n")
    more, _ = importing.manifests({n: info(n, "Webserver") for n in ("a", "b", "c")}, "ns")
    with pytest.raises(importing.Exists) as exists:
        importing.write_files(out, more)
    assert str(exists.value) == f"{out / 'a.yaml'}, {out / 'b.yaml'}"
    assert (out / "a.yaml").read_text() == "# edited by a person\n" and not (out / "c.yaml").exists()


def test_the_command_line():
    args = parse_args(["import", "web", "nb", "--out-dir", "jobs", "-k", "team-a", "--credentials-ref", "s"])
    assert (args.names, args.out_dir, args.kube_namespace, args.credentials_ref) == (
        ["web", "nb"],
        "jobs",
        "team-a",
        "s",
    )
    args = parse_args(["import"])
    assert (args.names, args.out_dir, args.kube_namespace) == ([], None, None)


def test_the_example_is_what_import_prints_for_a_web_server():
    example = gen.REPO_ROOT / "examples" / "observe" / "legacy-web.yaml"
    web = info("legacy-web", "Webserver", requested=2)
    assert example.read_text() == importing.render(web, "JuliaRun namespace demo")
