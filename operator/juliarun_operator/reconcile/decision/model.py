"""The decision's vocabulary: what it reads (an object, the facts around it, this process's
memory of what it sent) and what it returns (a plan of actions). Plain data, no I/O."""

from __future__ import annotations

import enum
from collections.abc import Mapping
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import Any, NamedTuple

from ...api import ADOPT_ANNOTATION, PAUSE_ANNOTATION, default_job_name
from ...juliarun.client import JobInfo
from . import status as st

DEFAULT_CONNECTION = "default"
REFUSAL_BACKOFF = (2.0, 120.0)  # seconds before a refused request is sent again: first, cap
SNAPSHOT_WAIT = 1.0  # seconds between looks while an object waits for JuliaRun to move
SECRET_RECHECK = 15.0  # seconds between looks at a spec that waits for a Secret it names
SNAPSHOT_SOON = 0.2  # ... and the first look after the operator asked it to (a submit, a scale)


class Outcome(enum.Enum):
    """What became of a submitJob this process sent."""

    LANDED = "landed"  # JuliaRun answered yes
    UNKNOWN = "unknown"  # no answer: it may still land, within the landing window
    REFUSED = "refused"  # JuliaRun answered no: it did not land


@dataclass
class Memory:
    """What this process sent for one object."""

    name: str | None = None
    submit: Outcome | None = None
    submit_at: float = 0.0  # when it was sent (the landing window counts from here)
    landed_at: float = 0.0  # when JuliaRun answered yes: a snapshot asked for later shows the job
    refusal: str = ""
    refused_generation: int = -1
    refusals: int = 0  # refusals in a row, of submits and updates: they pace the retries
    refused_at: float = 0.0
    params: dict[str, Any] | None = None  # the parameters JuliaRun last accepted
    scale: int | None = None
    scale_at: float = 0.0  # when JuliaRun answered the setJobScale
    update_refusal: str = ""
    update_refused_generation: int = -1
    deleted_jobs: set[str] = field(default_factory=set)  # deleteJob answered yes for these
    logs_posted: str = ""  # the job whose last log lines were posted
    last_logs: str = ""  # and those lines, for a status write after the job is deleted
    added_finalizer: bool = False  # this process found the object without it: nothing sent before
    invalid: str = ""  # a request refused before sending (too large, a bad parameter): nothing sent
    invalid_generation: int = -1  # ... for this generation's spec
    delete_refusal: str = ""  # JuliaRun refused the last deleteJob: why


@dataclass(frozen=True)
class ObjectState:
    """What the decision needs of a JuliaRunJob."""

    namespace: str
    name: str
    uid: str
    generation: int
    spec: Mapping[str, Any]
    status: Mapping[str, Any] = field(default_factory=dict)
    annotations: Mapping[str, str] = field(default_factory=dict)
    finalizers: tuple[str, ...] = ()
    deleting: bool = False
    created: float = 0.0  # creationTimestamp, seconds since the epoch

    @classmethod
    def of(cls, body: Mapping[str, Any]) -> ObjectState:
        meta = body.get("metadata") or {}
        created = meta.get("creationTimestamp")
        return cls(
            meta.get("namespace", ""),
            meta.get("name", ""),
            meta.get("uid", ""),
            meta.get("generation") or 0,
            body.get("spec") or {},
            body.get("status") or {},
            meta.get("annotations") or {},
            tuple(meta.get("finalizers") or ()),
            bool(meta.get("deletionTimestamp")),
            st.parse_time(created) if created else 0.0,
        )

    @property
    def paused(self) -> bool:
        return self.annotations.get(PAUSE_ANNOTATION, "").lower() == "true"

    @property
    def adopt(self) -> bool:
        return self.annotations.get(ADOPT_ANNOTATION, "").lower() == "true"

    @property
    def default_name(self) -> str:
        return default_job_name(self.namespace, self.name, self.uid)


class Earlier(NamedTuple):
    """What this process knows of the replica that acted before it (from the Lease)."""

    # It stopped with every submitJob it sent answered: a name it may have sent and that
    # JuliaRun does not show was never sent.
    settled: bool = False
    # It acted on nothing created from this time on (seconds since the epoch, by the API
    # server's clock, as creationTimestamp is). None: not known, so this process's own
    # start stands in for it.
    until: float | None = None

    def stopped_by(self, acting_since: float) -> float:
        """When it had stopped acting, as far as is known; else this process's start."""
        return acting_since if self.until is None else self.until


@dataclass(frozen=True)
class Facts:
    """Everything outside the object that the decision reads."""

    now: float
    memory: Memory
    connection: str = DEFAULT_CONNECTION  # the connection spec and administrator choose now
    params: Mapping[str, Any] | None = None  # the checked parameters, None if `invalid`
    invalid: str = ""  # why the spec cannot be sent
    invalid_outside: bool = False  # ... because of a Secret it names, which may be fixed without an edit
    unavailable: str = ""  # why JuliaRun (or the credentials to reach it) cannot be used now
    snapshot: Mapping[str, JobInfo] | None = None
    snapshot_time: float = 0.0
    landing: float = 60.0  # seconds a sent submitJob may take to land (time-outs and window)
    acting_since: float = 0.0  # when this process began to act (an earlier one may have sent)
    earlier: Earlier = field(default_factory=Earlier)  # what the Lease says of the replica that acted before
    adopt_allowed: bool = False  # the administrator lets this namespace adopt this name
    trusted: bool = False  # the administrator lets this namespace name jobs outside its prefix
    claimed_by: str = ""  # another object that holds this name, if any
    no_credentials: bool = False  # the connection's Secret is missing or unreadable


class Kind(enum.Enum):
    ADD_FINALIZER = "add-finalizer"
    REMOVE_FINALIZER = "remove-finalizer"
    WRITE_STATUS = "write-status"
    SUBMIT = "submit"
    SET_SCALE = "set-scale"
    UPDATE = "update"
    DELETE = "delete"
    DELETE_OBJECT = "delete-object"  # the JuliaRunJob itself (ttlSecondsAfterFinished)
    POST_LOGS = "post-logs"
    EVENT = "event"
    PUBLISH = "publish"  # create or patch a Service, EndpointSlice or Secret of the object's
    UNPUBLISH = "unpublish"  # delete one


class Resource(enum.Enum):
    """What the operator publishes of a job in the object's namespace (publish.py)."""

    SERVICE = "Service"
    ENDPOINT_SLICE = "EndpointSlice"
    SECRET = "Secret"  # noqa: S105 (a kind of object, not a password)


class Publication(NamedTuple):
    """PUBLISH: the object as it should be (`body`), created, patched onto the one there
    (`exists`), or deleted and created again (`replace`: a Service's type changes);
    UNPUBLISH: delete it, only the one with this `uid` (not one created again meanwhile)."""

    resource: Resource
    name: str
    body: Mapping[str, Any] = MappingProxyType({})
    exists: bool = False
    replace: bool = False
    uid: str = ""


MOVES_JULIARUN = frozenset({Kind.SUBMIT, Kind.SET_SCALE, Kind.UPDATE, Kind.DELETE})


class Note(NamedTuple):
    """A core/v1 Event to post about the object."""

    type: str  # "Normal" or "Warning"
    reason: str
    message: str


class Action(NamedTuple):
    """One step of a plan; which fields it carries follows from its kind (the constructors
    below build each kind with its own)."""

    kind: Kind
    job: str = ""  # the JuliaRun job name
    params: Mapping[str, Any] = MappingProxyType({})  # SUBMIT, UPDATE: JuliaRun parameters
    scale: int = 0  # SET_SCALE
    status: Mapping[str, Any] = MappingProxyType({})  # WRITE_STATUS: the fields to merge
    note: Note | None = None  # EVENT
    phase: str = ""  # POST_LOGS: how the job ended
    publication: Publication | None = None  # PUBLISH, UNPUBLISH


def submit(job: str, params: Mapping[str, Any]) -> Action:
    return Action(Kind.SUBMIT, job, params=params)


def update(job: str, params: Mapping[str, Any]) -> Action:
    return Action(Kind.UPDATE, job, params=params)


def set_scale(job: str, scale: int) -> Action:
    return Action(Kind.SET_SCALE, job, scale=scale)


def delete(job: str) -> Action:
    return Action(Kind.DELETE, job)


def write_status(fields: Mapping[str, Any]) -> Action:
    return Action(Kind.WRITE_STATUS, status=fields)


def event(etype: str, reason: str, message: str, job: str = "") -> Action:
    return Action(Kind.EVENT, job, note=Note(etype, reason, message))


def post_logs(job: str, phase: str) -> Action:
    return Action(Kind.POST_LOGS, job, phase=phase)


def publish(p: Publication) -> Action:
    return Action(Kind.PUBLISH, publication=p)


def unpublish(p: Publication) -> Action:
    return Action(Kind.UNPUBLISH, publication=p)


class Plan(NamedTuple):
    """Actions in order (each only if the ones before succeeded), and when to look again."""

    actions: tuple[Action, ...] = ()
    job: str | None = None  # the job name this object holds or will hold
    wait_snapshot: bool = False  # look again at the next snapshot (soon)
    requeue_after: float | None = None
    watch: bool = False  # a job whose end must show soon (a running batch job): snapshots every second

    def look_within(self) -> float:
        """Seconds within which the next snapshot is wanted: soon after a call that moves
        JuliaRun, and at a calmer pace while a job only takes its time."""
        return SNAPSHOT_SOON if any(a.kind in MOVES_JULIARUN for a in self.actions) else SNAPSHOT_WAIT
