"""What the operator does for one JuliaRunJob: submit, scale, update, delete.

Plain methods over plain dicts, called by the kopf handlers (`handlers.py`). Failures are
raised as `Retry` (try again after a delay) or recorded as a Stalled condition (no retry
will fix it; the next spec change will try again).
"""

from __future__ import annotations

import contextlib
import logging
import threading
import time
from dataclasses import dataclass, field
from typing import Any, Mapping

from ..juliarun import Context, Job, JuliaRunError, ParameterError
from ..juliarun import jobtypes as jt
from ..juliarun.errors import ApiError, CODE_INVALID_PARAMETER, CODE_JOB_EXISTS
from . import status as st
from .connections import Backoff, Connection, Connections, Credentials, Unavailable
from .kube import Kube
from .mapping import changed_params, job_params, params_digest
from .metrics import Metrics
from .naming import default_job_name

PAUSE_ANNOTATION = "juliarun.dev/paused"
ADOPT_ANNOTATION = "juliarun.dev/adopt"
log = logging.getLogger("juliarun_operator")


class Retry(Exception):
    """Try this handler again after `delay` seconds."""

    def __init__(self, message: str, delay: float):
        super().__init__(message)
        self.delay = delay


@dataclass
class Config:
    default_context: Context
    sync_interval: float = 10.0
    health_interval: float = 30.0
    log_lines_on_completion: int = 20
    submit_landing_window: float = 30.0  # seconds a server may still apply an abandoned submit
    credentials_ttl: float = 60.0  # seconds a credentials Secret is used before it is read again
    backoff: Backoff = field(default_factory=Backoff)


def _job(view: st.ObjectView, name: str) -> Job:
    return Job(view.spec["type"], name)


def _slim(body: Mapping[str, Any]) -> dict:
    """What the status sync needs of an object: a fraction of it (no managedFields, no
    last-applied annotations), which matters at tens of thousands of objects."""
    meta = body["metadata"]
    annotations = {k: v for k, v in (meta.get("annotations") or {}).items()
                   if k.startswith("juliarun.dev/")}
    kept = {k: meta[k] for k in ("name", "namespace", "uid", "generation", "deletionTimestamp")
            if k in meta}
    return {"metadata": {**kept, "annotations": annotations},
            "spec": body.get("spec") or {}, "status": body.get("status") or {}}


@contextlib.contextmanager
def _retry_on_outage(conn: Connection):
    try:
        yield
    except Unavailable as exc:
        raise Retry(f"JuliaRun unavailable: {exc}", exc.delay) from None
    except ApiError:
        raise  # the caller decides what an answer from JuliaRun means
    except JuliaRunError as exc:
        raise Retry(str(exc), conn.retry_delay()) from None


class Runtime:
    """The operator's state shared by every handler: connections, Kubernetes, metrics."""

    def __init__(self, config: Config, kube: Kube, metrics: Metrics | None = None):
        self.config = config
        self.kube = kube
        self.metrics = metrics or Metrics()
        self.connections = Connections(config.default_context, backoff=config.backoff,
                                       observe=self.metrics.observe_call)
        # Latest body of every JuliaRunJob, fed by the watch: the status sync's worklist.
        self.objects: dict[tuple[str, str], dict] = {}
        self.objects_lock = threading.Lock()
        # When each object's last setJobScale went out: the sync only corrects a scale that
        # a snapshot taken after that call still shows as drifted.
        self.scale_calls: dict[tuple[str, str], float] = {}
        # uid -> (job name, parameters digest) of every job this process submitted or adopted.
        self.applied: dict[str, tuple[str, str | None]] = {}
        # (namespace, Secret name) -> (when read, Credentials): see `_credentials`.
        self.credentials_cache: dict[tuple[str, str], tuple[float, Credentials]] = {}

    # --- the object registry ------------------------------------------------------------

    def track(self, event_type: str, body: Mapping[str, Any]) -> None:
        key = (body["metadata"]["namespace"], body["metadata"]["name"])
        with self.objects_lock:
            if event_type == "DELETED":
                self.objects.pop(key, None)
                self.scale_calls.pop(key, None)
                self.applied.pop(body["metadata"].get("uid"), None)  # Orphan leaves it otherwise
            else:
                self.objects[key] = _slim(body)

    def _remember_status(self, body: Mapping[str, Any], written: Mapping[str, Any]) -> None:
        key = (body["metadata"]["namespace"], body["metadata"]["name"])
        with self.objects_lock:
            if key in self.objects:
                self.objects[key] = _slim(written)

    def write_status(self, body: Mapping[str, Any], fields: Mapping[str, Any]) -> dict:
        meta = body["metadata"]
        written = self.kube.patch_status(meta["namespace"], meta["name"],
                                         {**fields, "lastSyncTime": st.now_iso()})
        self.metrics.status_written()
        self._remember_status(body, written)
        return written

    # --- connections --------------------------------------------------------------------

    def connection(self, view: st.ObjectView) -> Connection:
        ref = view.spec.get("credentialsRef")
        if not ref:
            return self.connections.default
        try:
            creds = self._credentials(view.namespace, ref["name"])
        except LookupError as exc:
            raise Retry(f"credentials: {exc}", self.config.backoff.delay(3)) from None
        return self.connections.get(creds)

    def _credentials(self, namespace: str, name: str) -> Credentials:
        """A credentials Secret, read at most once per `credentials_ttl`: the status sync asks
        for every object every interval, and a rotated token still arrives within the TTL."""
        now = time.monotonic()
        with self.objects_lock:
            cached = self.credentials_cache.get((namespace, name))
        if cached and now - cached[0] < self.config.credentials_ttl:
            return cached[1]
        data = self.kube.read_secret_data(namespace, name)
        for key in ("url", "token", "namespace"):
            if not data.get(key):
                raise LookupError(f"Secret {namespace}/{name} has no key {key!r}")
        creds = Credentials(data["url"], data["token"], data["namespace"], data.get("ca.crt"))
        with self.objects_lock:
            self.credentials_cache[(namespace, name)] = (now, creds)
        return creds

    # --- create / resume / unpause ------------------------------------------------------

    def ensure(self, body: Mapping[str, Any]) -> str:
        """Make sure the object's job exists in JuliaRun, submitting it at most once."""
        started = time.monotonic()
        view = st.ObjectView.of(body, PAUSE_ANNOTATION)
        if view.deleting:
            return "deleting"
        if view.paused:
            fields = st.view_of(view, None)  # a paused view needs nothing from JuliaRun
            if st.changed(view.status, fields):
                self.write_status(body, fields)
            return "paused"
        try:
            params = job_params(view.spec, view.namespace, self.kube.read_secret)
        except (ParameterError, ValueError) as exc:
            self.stall(body, view, "InvalidSpec", str(exc))
            return "invalid"
        if self.applied_job(body, view):
            return self._catch_up(body, view, params)
        conn = self.connection(view)
        recorded = view.status.get("jobName")
        name = recorded or view.spec.get("jobName") or default_job_name(view.namespace, view.name)
        adopt = (body["metadata"].get("annotations") or {}).get(ADOPT_ANNOTATION) == "true"
        if recorded or adopt:
            # A retry (our earlier submit may have landed) or an adoption: look before acting.
            if recorded:
                self._wait_for_earlier_submit(conn, view)
            jobs = self._snapshot(conn, started)
            if name in jobs:
                if jobs[name].type != view.spec["type"]:
                    self.stall(body, view, "Conflict",
                               f"JuliaRun job {name} is a {jobs[name].type}, not a {view.spec['type']}")
                    return "conflict"
                self._submitted(body, view, name, params)
                self.kube.event(body, "Normal", "Adopted", f"adopted existing JuliaRun job {name}")
                self._scale_after_submit(conn, view, name, params)
                return "adopted"
        self.write_status(body, {  # intent before action: a retry after a crash finds this name
            "jobName": name, "submitted": False, "phase": "Pending", "submitTime": st.now_iso(),
            "observedGeneration": view.generation,
            "conditions": st.conditions_for(
                view.status, view.generation, st.now_iso(),
                ("False", "Submitting", f"submitting job {name}"),
                ("True", "Submitting", f"submitting job {name}"), ("False", "Healthy", ""))})
        try:
            self._call(conn, conn.client.submit_job, _job(view, name), **params)
        except ApiError as exc:
            if exc.code == CODE_JOB_EXISTS and (recorded or adopt):
                # Appeared since our snapshot, under a name this object recorded (or may adopt).
                self._submitted(body, view, name, params)
                return "adopted"
            if exc.code == CODE_JOB_EXISTS:
                # A first submit met a job this object never created: not ours. The recorded
                # name goes, so that a retry cannot mistake that job for one of ours.
                self.stall(body, view, "Conflict",
                           f"JuliaRun job {name} already exists and was not created for this object; "
                           f"set spec.jobName to another name, or annotate {ADOPT_ANNOTATION}=true "
                           "to adopt it", forget_name=True)
                return "conflict"
            if exc.code == CODE_INVALID_PARAMETER:
                self.stall(body, view, "SubmitRefused", f"JuliaRun refused job {name}: {exc.reason}")
                return "refused"
            raise
        self.kube.event(body, "Normal", "Submitted", f"submitted {view.spec['type']} job {name} to JuliaRun")
        # No status write of its own: the status sync's first write says `submitted` along
        # with JuliaRun's view (one write per object fewer). A crash before it leaves the
        # recorded name, which a restart finds in JuliaRun after the landing window.
        self.applied[body["metadata"].get("uid")] = (name, params_digest(params))
        self._scale_after_submit(conn, view, name, params)
        return "submitted"

    def _wait_for_earlier_submit(self, conn: Connection, view: st.ObjectView) -> None:
        """A submitJob sent before a crash may still land: give it its time-out first.

        Deciding "not in JuliaRun, submit" too early would submit twice, and deleting the
        object too early would leak the job. A server may apply a request after the client
        gave up on it, hence the landing window on top of the time-outs.
        """
        sent = view.status.get("submitTime")
        if not sent:
            return
        ctx = conn.context
        landed_by = (st.parse_time(sent) + ctx.connect_timeout + ctx.read_timeout + 1
                     + self.config.submit_landing_window)
        remaining = landed_by - time.time()
        if remaining > 0:
            raise Retry(f"waiting {remaining:.0f} s for an earlier submitJob to land or time out",
                        remaining)

    def _submitted(self, body: Mapping[str, Any], view: st.ObjectView, name: str,
                   params: Mapping[str, Any]) -> None:
        """Record that the job exists; conditions start afresh (a past conflict is over)."""
        message = f"job {name} submitted; waiting for JuliaRun's view"
        self.applied[body["metadata"].get("uid")] = (name, params_digest(params))
        self.write_status(body, {
            "jobName": name, "submitted": True, "phase": "Pending", "message": message,
            "parametersHash": params_digest(params),
            "observedGeneration": view.generation,
            "conditions": st.conditions_for(view.status, view.generation, st.now_iso(),
                                            ("False", "Submitted", message),
                                            ("True", "Submitted", message), ("False", "Healthy", ""))})

    def _catch_up(self, body: Mapping[str, Any], view: st.ObjectView,
                  params: Mapping[str, Any]) -> str:
        """A submitted job whose spec changed unseen (folded into a create cycle, or while
        the operator was down): send the parameters again. Scale drift is the sync's job."""
        name, digest = self.applied_job(body, view)
        if digest == params_digest(params):
            return "present"
        conn = self.connection(view)
        sent = {k: v for k, v in params.items() if k != "nworkers"}
        self._call(conn, conn.client.update_job, _job(view, name), **sent)
        self._record_params(body, name, params)
        self.kube.event(body, "Normal", "Updated", "sent the current parameters again")
        return "updated"

    def applied_job(self, body: Mapping[str, Any], view: st.ObjectView) -> tuple[str, str | None] | None:
        """(job name, parameters digest) of the object's submitted job, or None.

        This process's memory comes first: under load kopf may run a handler with a body
        that predates our own status writes, and that body would say "not submitted yet".
        """
        known = self.applied.get(body["metadata"].get("uid"))
        if known:
            return known
        if view.status.get("submitted"):
            return view.status["jobName"], view.status.get("parametersHash")
        return None

    def _record_params(self, body: Mapping[str, Any], name: str, params: Mapping[str, Any]) -> None:
        digest = params_digest(params)
        self.applied[body["metadata"].get("uid")] = (name, digest)
        self.write_status(body, {"parametersHash": digest})

    def _scale_after_submit(self, conn: Connection, view: st.ObjectView, name: str,
                            params: Mapping[str, Any]) -> None:
        """Types that scale but take no nworkers (Notebook) get their scale set after submit."""
        wanted = view.spec.get("parallelism")
        spec = jt.job_type(view.spec["type"])
        if wanted is not None and spec.scalable and params.get("nworkers") != wanted:
            self._call(conn, conn.client.set_job_scale, _job(view, name), wanted)

    # --- spec changes ---------------------------------------------------------------------

    def scale(self, body: Mapping[str, Any], parallelism: int | None) -> str:
        view = st.ObjectView.of(body, PAUSE_ANNOTATION)
        applied = self.applied_job(body, view)
        if view.paused or view.deleting or not applied or parallelism is None:
            return "skipped"  # the submit (or the unpause) uses the spec as it is then
        conn = self.connection(view)
        self.scale_calls[(view.namespace, view.name)] = time.monotonic()
        try:
            self._call(conn, conn.client.set_job_scale, _job(view, applied[0]), parallelism)
        except ApiError as exc:
            if exc.code == CODE_INVALID_PARAMETER:
                self.stall(body, view, "UpdateRefused", f"JuliaRun refused scale {parallelism}: {exc.reason}")
                return "refused"
            raise
        self.kube.event(body, "Normal", "Scaled", f"requested {parallelism} workers")
        return "scaled"

    def update(self, body: Mapping[str, Any], old_spec: Mapping[str, Any]) -> str:
        """Send changed parameters with updateJob; an unsubmitted object gets another try."""
        view = st.ObjectView.of(body, PAUSE_ANNOTATION)
        if view.paused or view.deleting:
            return "skipped"
        applied = self.applied_job(body, view)
        if not applied:
            return self.ensure(body)
        name, digest = applied
        try:
            new = job_params(view.spec, view.namespace, self.kube.read_secret)
        except (ParameterError, ValueError) as exc:
            self.stall(body, view, "InvalidSpec", str(exc))
            return "invalid"
        if digest == params_digest(new):
            return "unchanged"
        try:
            old = job_params(old_spec, view.namespace, self.kube.read_secret)
        except (ParameterError, ValueError):
            old = {}
        if digest == params_digest(old):
            changes = changed_params(old, new, view.spec["type"])
        else:  # JuliaRun holds something else than the old spec says: send it all
            changes = {k: v for k, v in new.items() if k != "nworkers"}
        conn = self.connection(view)
        try:
            self._call(conn, conn.client.update_job, _job(view, name), **changes)
        except ApiError as exc:
            if exc.code == CODE_INVALID_PARAMETER:
                self.stall(body, view, "UpdateRefused", f"JuliaRun refused the update: {exc.reason}")
                return "refused"
            raise
        self._record_params(body, name, new)
        self.kube.event(body, "Normal", "Updated", "updated " + ", ".join(sorted(changes)))
        return "updated"

    # --- deletion -------------------------------------------------------------------------

    def delete(self, body: Mapping[str, Any]) -> str:
        """Delete the JuliaRun job under policy Delete; a job already gone counts as deleted."""
        started = time.monotonic()
        view = st.ObjectView.of(body, PAUSE_ANNOTATION)
        applied = self.applied_job(body, view)
        name = applied[0] if applied else view.status.get("jobName")
        if view.spec.get("deletionPolicy", "Delete") == "Orphan":
            if name:
                self.kube.event(body, "Normal", "Orphaned", f"left JuliaRun job {name} running")
            return "orphaned"
        if not name:
            return "nothing"  # nothing was ever submitted: the name is recorded first
        conn = self.connection(view)
        if not applied:
            self._wait_for_earlier_submit(conn, view)  # else a late submit would leak the job
        try:
            self._call(conn, conn.client.delete_job, _job(view, name), force=True)
        except ApiError as exc:
            if name in self._snapshot(conn, started):
                raise Retry(f"deleteJob {name} refused: {exc.reason}", conn.backoff.delay(3)) from None
        self.kube.event(body, "Normal", "Deleted", f"deleted JuliaRun job {name}")
        self.applied.pop(body["metadata"].get("uid"), None)
        return "deleted"

    # --- helpers ----------------------------------------------------------------------------

    def _call(self, conn: Connection, method, *args: Any, **kwargs: Any) -> Any:
        """A JuliaRun call through `conn`; outages become Retry with the connection's backoff."""
        with _retry_on_outage(conn):
            return conn.call(method, *args, **kwargs)

    def _snapshot(self, conn: Connection, fresh_after: float) -> dict:
        """The connection's jobs, as JuliaRun saw them at or after `fresh_after`."""
        with _retry_on_outage(conn):
            return conn.jobs(fresh_after=fresh_after)

    def stall(self, body: Mapping[str, Any], view: st.ObjectView, reason: str, message: str,
              forget_name: bool = False) -> None:
        """Record an error no retry will fix; the next spec change tries again."""
        log.warning("%s/%s: %s: %s", view.namespace, view.name, reason, message)
        now = st.now_iso()
        forget = {"jobName": None, "submitTime": None} if forget_name else {}
        self.write_status(body, {
            **forget,
            "phase": "Failed", "message": message, "observedGeneration": view.generation,
            "conditions": st.conditions_for(view.status, view.generation, now,
                                            ("False", reason, message), ("False", reason, ""),
                                            ("True", reason, message))})
        self.kube.event(body, "Warning", reason, message)
