"""The generated CRD on a real API server: examples are accepted, bad specs are refused
with a message naming the field, and the subresources and printer columns work."""

from __future__ import annotations

import copy
import json
import time
import uuid

import pytest
import yaml

from juliarun_dev import gen
from juliarun_operator.juliarun import jobtypes as jt

pytestmark = pytest.mark.integration

CRD_FILE = gen.REPO_ROOT / gen.CRD_PATH
EXAMPLES = gen.REPO_ROOT / "examples"
RESOURCE = f"{gen.PLURAL}.{gen.GROUP}"


def example_spec(type_name: str) -> dict:
    for path in EXAMPLES.glob("*.yaml"):
        for doc in yaml.safe_load_all(path.read_text()):
            if doc["kind"] == gen.KIND and doc["spec"]["type"] == type_name:
                return doc["spec"]
    raise AssertionError(f"no example for {type_name}")


def manifest(spec: dict, name: str | None = None) -> str:
    return json.dumps(
        {
            "apiVersion": f"{gen.GROUP}/{gen.VERSION}",
            "kind": gen.KIND,
            "metadata": {"name": name or f"t-{uuid.uuid4().hex[:8]}"},
            "spec": spec,
        }
    )


@pytest.fixture(scope="module")
def crd(control_plane):
    # Left installed: other tests of the session use the same CRD.
    control_plane.kubectl("apply", "--server-side", "--force-conflicts", "-f", str(CRD_FILE))
    control_plane.kubectl("wait", "--for=condition=Established", f"crd/{RESOURCE}", "--timeout=60s")
    return RESOURCE


@pytest.fixture(scope="module")
def namespace(control_plane, crd):
    name = f"jr-crd-{uuid.uuid4().hex[:8]}"
    control_plane.kubectl("create", "namespace", name)
    yield name
    control_plane.kubectl("delete", "namespace", name, "--wait=false")


def refused(control_plane, namespace: str, spec: dict) -> str:
    """The API server's error for creating a job with `spec`; fails if it is accepted."""
    result = control_plane.kubectl("create", "-n", namespace, "-f", "-", input=manifest(spec), check=False)
    assert result.returncode != 0, f"accepted: {spec}"
    return result.stderr


def patch_refused(control_plane, namespace: str, name: str, patch: dict) -> str:
    result = control_plane.kubectl(
        "patch", RESOURCE, name, "-n", namespace, "--type=merge", "-p", json.dumps(patch), check=False
    )
    assert result.returncode != 0, f"patch accepted: {patch}"
    return result.stderr


def get(control_plane, namespace: str, name: str) -> dict:
    return json.loads(control_plane.kubectl("get", RESOURCE, name, "-n", namespace, "-o", "json").stdout)


@pytest.mark.parametrize("path", sorted(EXAMPLES.glob("*.yaml")), ids=lambda p: p.stem)
def test_example_is_accepted(control_plane, namespace, path):
    control_plane.kubectl("apply", "-n", namespace, "-f", str(path))
    for doc in yaml.safe_load_all(path.read_text()):
        if doc["kind"] == gen.KIND:
            assert (
                get(control_plane, namespace, doc["metadata"]["name"])["spec"]["type"] == doc["spec"]["type"]
            )


REQUIRED_CASES = [(t.name, jt.PARAMETERS[n].field) for t in jt.JOB_TYPES.values() for n in t.required()]


@pytest.mark.parametrize("type_name, field", REQUIRED_CASES, ids=lambda v: str(v))
def test_missing_required_parameter_is_refused(control_plane, namespace, type_name, field):
    spec = example_spec(type_name)
    del spec[field]
    assert f"spec.{field} is required for type {type_name}" in refused(control_plane, namespace, spec)


def _with(type_name: str, **fields) -> dict:
    return {**copy.deepcopy(example_spec(type_name)), **fields}


BAD_SPECS = [
    (
        "param-not-for-type",
        _with("JuliaBatch", builderScript="b.jl"),
        ["spec.builderScript", "applies only to type PkgBuilder"],
    ),
    (
        "password-not-for-batch",
        _with("JuliaBatch", passwordSecretRef={"name": "s", "key": "k"}),
        ["spec.passwordSecretRef", "applies only to type Notebook"],
    ),
    (
        "parallelism-not-scalable",
        _with("MessageQ", parallelism=2),
        ["spec.parallelism", "applies only to types"],
    ),
    ("bad-type", _with("JuliaBatch", type="Batch"), ["spec.type", "Unsupported value"]),
    ("bad-enum", _with("JuliaParBatch", restart="Sometimes"), ["spec.restart", "Unsupported value"]),
    ("bad-quantity", _with("JuliaBatch", memory="lots"), ["spec.memory"]),
    ("negative-cpu", _with("JuliaBatch", cpu=-1), ["spec.cpu"]),
    (
        "port-out-of-range",
        _with("Webserver", ports=[{"name": "http", "containerPort": 70000, "servicePort": 80}]),
        ["spec.ports[0].containerPort"],
    ),
    (
        "duplicate-port-name",
        _with(
            "Webserver",
            ports=[
                {"name": "http", "containerPort": 80, "servicePort": 80},
                {"name": "http", "containerPort": 81, "servicePort": 81},
            ],
        ),
        ["spec.ports[1]", "Duplicate value"],
    ),
    ("bad-env-name", _with("JuliaBatch", envVars=[{"name": "1X", "value": "v"}]), ["spec.envVars[0].name"]),
    ("bad-job-name", _with("JuliaBatch", jobName="Not_A_Label"), ["spec.jobName"]),
    ("too-parallel", _with("Generic", parallelism=10001), ["spec.parallelism"]),
    (
        "password-without-key",
        _with("Notebook", passwordSecretRef={"name": "s"}),
        ["spec.passwordSecretRef.key"],
    ),
    # Strings and lists are bounded: every parameter travels in one request line (8,190
    # bytes), and an aiohttp server echoes an over-long one, token included, in its error.
    (
        "9k-start-script",
        _with("JuliaBatch", startScript="x" * 9000),
        ["spec.startScript", "Too long: may not be more than 4096"],
    ),
    (
        "long-env-value",
        _with("JuliaBatch", envVars=[{"name": "X", "value": "v" * 2000}]),
        ["spec.envVars[0].value", "Too long"],
    ),
    (
        "too-many-volumes",
        _with("JuliaBatch", additionalVolumes=[f"v{i}" for i in range(65)]),
        ["spec.additionalVolumes", "Too many"],
    ),
]


@pytest.mark.parametrize("spec, expected", [c[1:] for c in BAD_SPECS], ids=[c[0] for c in BAD_SPECS])
def test_bad_spec_is_refused_naming_the_field(control_plane, namespace, spec, expected):
    error = refused(control_plane, namespace, spec)
    for text in expected:
        assert text in error


def test_a_9k_start_script_is_refused_at_apply(control_plane, namespace, tmp_path):
    """`kubectl apply` of a file, as a user would: the API server refuses it, naming the field."""
    path = tmp_path / "big.yaml"
    path.write_text(manifest(_with("JuliaBatch", startScript="println(1)\n" * 900), "big-script"))
    result = control_plane.kubectl("apply", "-n", namespace, "-f", str(path), check=False)
    assert result.returncode != 0 and "spec.startScript" in result.stderr and "Too long" in result.stderr
    gone = control_plane.kubectl("get", RESOURCE, "big-script", "-n", namespace, check=False)
    assert gone.returncode != 0 and "NotFound" in gone.stderr


def test_parameters_that_cannot_travel_together_in_one_request_are_refused_at_apply(control_plane, namespace):
    """Each within its own bound, together over what one request line carries: refused, so an
    admitted spec is one the operator can send; just within, admitted."""
    over = _with("JuliaBatch", runVolume="v" * 2000, startScript="s" * 3200)
    error = refused(control_plane, namespace, over)
    assert f"at most {jt.MAX_PARAMS_TEXT} characters" in error and "one request line" in error
    within = {"type": "JuliaBatch", "runVolume": "v" * 2000, "startScript": "s" * (jt.MAX_PARAMS_TEXT - 2000)}
    name = f"fits-{uuid.uuid4().hex[:6]}"
    control_plane.kubectl("apply", "-n", namespace, "-f", "-", input=manifest(within, name))
    control_plane.kubectl("delete", RESOURCE, name, "-n", namespace)


def test_lists_count_towards_what_one_request_carries(control_plane, namespace):
    """Lists each within maxItems and maxLength, together over the request line: refused (the
    CRD once admitted 258 KB specs that could never be sent, and the operator kept them)."""
    volumes = [f"{k:02d}" + "v" * 98 for k in range(40)]  # 4,400 characters as sent (10 each more)
    env = [{"name": f"E{k}", "value": "x" * 100} for k in range(12)]  # 126 each as sent
    for spec in (
        _with("JuliaBatch", additionalVolumes=volumes, envVars=env),
        _with("Generic", image="i", args=["a" * 1000] * 6),
        _with(
            "Notebook",
            ports=[
                {"name": f"p{k:02d}_" + "n" * 240, "containerPort": 1000 + k, "servicePort": 1000 + k}
                for k in range(22)
            ],
        ),
    ):
        error = refused(control_plane, namespace, spec)
        assert f"at most {jt.MAX_PARAMS_TEXT} characters" in error, error
    within = {"type": "JuliaBatch", "runVolume": "v", "startScript": "s.jl", "additionalVolumes": volumes}
    within["envVars"] = env[:5]  # 5,035 characters in all, as counted
    name = f"lists-{uuid.uuid4().hex[:6]}"
    control_plane.kubectl("apply", "-n", namespace, "-f", "-", input=manifest(within, name))
    control_plane.kubectl("delete", RESOURCE, name, "-n", namespace)


def test_type_and_job_name_are_immutable(control_plane, namespace):
    named = f"im-{uuid.uuid4().hex[:6]}"
    control_plane.kubectl(
        "create", "-n", namespace, "-f", "-", input=manifest(_with("JuliaBatch", jobName="fixed-name"), named)
    )
    assert "spec.type is immutable" in patch_refused(
        control_plane, namespace, named, {"spec": {"type": "JuliaParBatch"}}
    )
    for job_name in ("other-name", None):  # changed, removed
        assert "spec.jobName is immutable" in patch_refused(
            control_plane, namespace, named, {"spec": {"jobName": job_name}}
        )

    unnamed = f"im-{uuid.uuid4().hex[:6]}"
    control_plane.kubectl("create", "-n", namespace, "-f", "-", input=manifest(_with("JuliaBatch"), unnamed))
    assert "spec.jobName is immutable" in patch_refused(
        control_plane, namespace, unnamed, {"spec": {"jobName": "late"}}
    )
    # Other fields stay editable.
    control_plane.kubectl(
        "patch", RESOURCE, unnamed, "-n", namespace, "--type=merge", "-p", json.dumps({"spec": {"cpu": 2}})
    )


def test_scale_subresource_drives_parallelism(control_plane, namespace):
    name = f"sc-{uuid.uuid4().hex[:6]}"
    control_plane.kubectl("create", "-n", namespace, "-f", "-", input=manifest(_with("JuliaParBatch"), name))
    control_plane.kubectl("scale", RESOURCE, name, "-n", namespace, "--replicas=6")
    assert get(control_plane, namespace, name)["spec"]["parallelism"] == 6

    batch = f"sc-{uuid.uuid4().hex[:6]}"
    control_plane.kubectl("create", "-n", namespace, "-f", "-", input=manifest(_with("JuliaBatch"), batch))
    result = control_plane.kubectl("scale", RESOURCE, batch, "-n", namespace, "--replicas=2", check=False)
    assert result.returncode != 0 and "spec.parallelism applies only to types" in result.stderr


def test_status_keeps_every_field_and_feeds_the_columns(control_plane, namespace):
    name = f"st-{uuid.uuid4().hex[:6]}"
    control_plane.kubectl("create", "-n", namespace, "-f", "-", input=manifest(_with("Webserver"), name))
    status = {
        "observedGeneration": 1,
        "jobName": "st",
        "phase": "Running",
        "submitted": True,
        "created": True,
        "completed": False,
        "workersStarted": 2,
        "workersSucceeded": 0,
        "scale": {"running": 2, "requested": 2},
        "workers": "2/2",
        "endpoints": ["http://10.0.0.5:80"],
        "message": "running",
        "lastSyncTime": "2024-01-01T00:00:00Z",
        "conditions": [
            {
                "type": "Ready",
                "status": "True",
                "reason": "Running",
                "message": "ok",
                "lastTransitionTime": "2024-01-01T00:00:00Z",
                "observedGeneration": 1,
            }
        ],
    }
    control_plane.kubectl(
        "patch",
        RESOURCE,
        name,
        "-n",
        namespace,
        "--subresource=status",
        "--type=merge",
        "-p",
        json.dumps({"status": status}),
    )
    assert get(control_plane, namespace, name)["status"] == status

    table = control_plane.kubectl("get", RESOURCE, name, "-n", namespace).stdout.split()
    assert table[:6] == ["NAME", "TYPE", "PHASE", "WORKERS", "ENDPOINT", "AGE"]
    assert table[6:11] == [name, "Webserver", "Running", "2/2", "http://10.0.0.5:80"]
    scale = json.loads(
        control_plane.kubectl(
            "get", RESOURCE, name, "-n", namespace, "--subresource=scale", "-o", "json"
        ).stdout
    )
    assert scale["status"]["replicas"] == 2


def test_a_memory_typo_is_told_what_a_quantity_is(control_plane, namespace):
    err = refused(control_plane, namespace, _with("JuliaBatch", memory="2GB"))
    assert "spec.memory" in err and "must be a quantity such as 512Mi or 4Gi" in err, err
    assert "[0-9]" not in err  # no regex for a person to decode


def test_explain_lists_the_condition_types(control_plane, crd):
    deadline = time.monotonic() + 30
    while True:
        result = control_plane.kubectl("explain", "jrj.status.conditions", check=False)
        if result.returncode == 0 or time.monotonic() > deadline:
            break
        time.sleep(0.5)
    assert result.returncode == 0, result.stderr
    text = " ".join(result.stdout.split())
    for kind in ("Ready", "Reconciling", "Stalled", "Complete", "Failed", "Suspended"):
        assert f"{kind}" in text.split("FIELDS")[0], kind


def test_explain_shows_parameter_descriptions(control_plane, crd):
    # The short name appears once discovery has caught up with the new CRD.
    deadline = time.monotonic() + 30
    while True:
        result = control_plane.kubectl("explain", "jrj.spec.runVolume", check=False)
        if result.returncode == 0 or time.monotonic() > deadline:
            break
        time.sleep(0.5)
    assert result.returncode == 0, result.stderr
    text = " ".join(result.stdout.split())
    assert "Persistent volume used as the job's main volume. All job types. Required." in text
