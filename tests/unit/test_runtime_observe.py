"""The runtime and `spec.managementPolicy: Observe`: the controller mirrors and lets go without
a JuliaRun write, and the executor refuses one even if a plan asked for it."""

from __future__ import annotations

import time

import pytest

from juliarun_operator.api import FINALIZER
from juliarun_operator.juliarun import Context
from juliarun_operator.juliarun.model import JobInfo, JobScale, JobStatus
from juliarun_operator.reconcile import decision as d
from juliarun_operator.reconcile.adapters.metrics import Metrics
from juliarun_operator.reconcile.runtime.connections import Connections
from juliarun_operator.reconcile.runtime.controller import Config, Controller
from juliarun_operator.reconcile.runtime.executor import ObserveViolation

from support.kube import RecordingKube, body

CONTEXT = Context(url="http://127.0.0.1:9", token="unit-test-token-2468", namespace="ns")
KEY = ("team", "seen")
JOB = "legacy-notebook"
SPEC = {"type": "Notebook", "jobName": JOB, "parallelism": 1, "managementPolicy": "Observe"}
WRITES = ("submit_job", "set_job_scale", "update_job", "delete_job")


def controller(**config) -> tuple[Controller, RecordingKube, list[str]]:
    """A controller over one Observe object, whose client records any write it is asked to send."""
    kube = RecordingKube(body("seen", 1, spec=SPEC))
    ctl = Controller(Config(**config), kube, Connections(CONTEXT), Metrics())
    ctl.acting = True
    conn = ctl.connections.default
    info = JobInfo(JOB, "Notebook", JobStatus(False, 0, 3, True, False), JobScale(3, 3), ["10.1.2.3:8888"])
    conn.snapshot, conn.snapshot_time = {JOB: info}, time.time()
    sent: list[str] = []
    for name in WRITES:
        setattr(conn.client, name, lambda *a, _n=name, **k: sent.append(_n))
    ctl.track("ADDED", kube.get_object(*KEY))
    return ctl, kube, sent


def test_an_observe_object_is_mirrored_and_let_go_without_a_juliarun_write():
    ctl, kube, sent = controller(adopt_namespaces=None)
    ctl.process(KEY)
    status = kube.objects[KEY]["status"]
    ready = next(c for c in status["conditions"] if c["type"] == "Ready")
    assert (ready["status"], ready["reason"]) == ("True", "AtScale")
    assert status["scale"] == {"running": 3, "requested": 3} and status["endpoints"] == ["10.1.2.3:8888"]
    # deleted: the finalizer goes, the job stays
    kube.objects[KEY]["metadata"]["deletionTimestamp"] = "2026-11-26T00:01:00Z"
    ctl.track("MODIFIED", kube.get_object(*KEY))
    ctl.process(KEY)
    assert kube.objects[KEY]["metadata"]["finalizers"] == []
    assert sent == []


def test_an_observe_object_the_namespace_may_not_adopt_is_refused_without_a_write():
    ctl, kube, sent = controller()  # --adopt-namespace: none
    ctl.process(KEY)
    stalled = next(c for c in kube.objects[KEY]["status"]["conditions"] if c["type"] == "Stalled")
    assert (stalled["status"], stalled["reason"]) == ("True", "ObserveRefused")
    assert sent == []


@pytest.mark.parametrize(
    "action", [d.submit(JOB, {"run_volume": "v"}), d.set_scale(JOB, 5), d.update(JOB, {}), d.delete(JOB)]
)
def test_the_executor_sends_no_write_for_an_observe_object_whatever_the_plan(action):
    ctl, kube, sent = controller(adopt_namespaces=None)
    current = kube.get_object(*KEY)
    current["metadata"]["finalizers"] = [FINALIZER]
    obj = d.ObjectState.of(current)
    memory = d.Memory()
    with pytest.raises(ObserveViolation, match=r"spec\.managementPolicy is Observe"):
        ctl.executor.execute(current, obj, memory, ctl.connections.default, d.Plan((action,)))
    assert sent == [] and memory == d.Memory()  # nothing sent, nothing recorded as sent
