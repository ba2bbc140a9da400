"""The job-type table: the single source of truth for JuliaRun job types.

The client validates with it, the emulator enforces it, and the CRD schema and the
parameter docs are generated from it (`juliarun_dev.gen`, `make generate`). Defaults and the
required/optional matrix follow the JuliaRun API reference (which, where it differs from
the 2019 JuliaRunClient docs, wins).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

# Value kinds a parameter can have; `encoding` knows how each travels on the wire.
STRING = "string"
NUMBER = "number"  # non-negative float (CPU cores)
INTEGER = "integer"  # non-negative int
BOOLEAN = "boolean"
QUANTITY = "quantity"  # Kubernetes-style memory quantity, e.g. 512Mi
STRING_LIST = "string_list"
PORTS = "ports"  # name -> (container port, service port)
ENV = "env"  # name -> value
ENUM = "enum"
SECRET = "secret"  # noqa: S105 (a type tag, not a password): a string on the wire; a Secret reference in the CRD

RESTART_POLICIES = ("RestartAlways", "RestartOnFailure", "Never")

# Size bounds of values, which the CRD enforces (gen/). Every parameter travels in the
# one request line a JuliaRun server reads (aiohttp: 8,190 bytes, token included), so no
# single value may take all of it; the client still checks the whole request before sending.
MAX_TEXT = 4096  # characters of a text value: scripts, paths, images, shells
MAX_ITEM = 1024  # characters of a list element or an environment variable's value
MAX_KEY = 253  # characters of a port or variable name, a quantity, a Secret name or key
# characters of all text parameters together: they and the token share one request line of
# 8 KiB (context.MAX_REQUEST_LINE); the CRD admits no more (the rest is for the token and names)
MAX_PARAMS_TEXT = 5120
MAX_ITEMS = 64  # elements of a list (volumes, ports, variables, command, args)


@dataclass(frozen=True)
class Param:
    """One JuliaRun job parameter: its wire name, CRD field name, kind and meaning."""

    name: str
    field: str
    kind: str
    description: str
    choices: tuple[str, ...] = ()


REQUIRED = object()  # marks a required parameter in a job type's parameter map
OPTIONAL = None  # optional, no default (JuliaRun decides, or nothing is set)


def _params(*params: Param) -> dict[str, Param]:
    return {p.name: p for p in params}


PARAMETERS: dict[str, Param] = _params(
    Param("run_volume", "runVolume", STRING, "Persistent volume used as the job's main volume."),
    Param("start_script", "startScript", STRING, "Julia script the master (or each unit) starts with."),
    Param("builder_script", "builderScript", STRING, "Julia script that builds the package bundle."),
    Param("cfg_file", "cfgFile", STRING, "Configuration file the server starts with."),
    Param(
        "pkg_bundle",
        "pkgBundle",
        STRING,
        "Package bundle put on LOAD_PATH (the bundle to build, for PkgBuilder).",
    ),
    Param(
        "additional_volumes",
        "additionalVolumes",
        STRING_LIST,
        "More persistent volumes, each mounted at /mnt/<name>.",
    ),
    Param("ports", "ports", PORTS, "Network ports to expose: name -> [container port, service port]."),
    Param("external", "external", BOOLEAN, "Expose the ports outside the cluster."),
    Param("image", "image", STRING, "Container image to run."),
    Param("cpu", "cpu", NUMBER, "CPU cores to allocate (to the master, where there are workers)."),
    Param("gpu", "gpu", INTEGER, "GPUs to allocate."),
    Param("memory", "memory", QUANTITY, "Memory to allocate, as a quantity such as 512Mi or 4Gi."),
    Param("shell", "shell", STRING, "Start-up shell script."),
    Param("envvars", "envVars", ENV, "Additional environment variables: name -> value."),
    Param(
        "nworkers",
        "nworkers",
        INTEGER,
        "Workers (or containers) to start with; the operator sets it from spec.parallelism.",
    ),
    Param("worker_cpu", "workerCpu", NUMBER, "CPU cores for each worker."),
    Param("worker_gpu", "workerGpu", INTEGER, "GPUs for each worker."),
    Param("worker_memory", "workerMemory", QUANTITY, "Memory for each worker."),
    Param("worker_shell", "workerShell", STRING, "Start-up shell script of each worker."),
    Param("worker_start_script", "workerStartScript", STRING, "Julia script each worker starts with."),
    Param("worker_envvars", "workerEnvVars", ENV, "Additional environment variables of each worker."),
    Param("restart", "restart", ENUM, "Whether workers are restarted.", RESTART_POLICIES),
    Param("passwd", "passwordSecretRef", SECRET, "Password protecting the notebook."),
    Param("command", "command", STRING_LIST, "Command to run (the image's entrypoint when unset)."),
    Param("args", "args", STRING_LIST, "Arguments to the command."),
)


@dataclass(frozen=True)
class JobType:
    """A JuliaRun job type and the parameters it takes (name -> REQUIRED/OPTIONAL/default)."""

    name: str
    description: str
    params: dict[str, Any]
    scalable: bool  # setJobScale applies (workers, array units or containers)
    completes: bool  # a batch job that finishes; services run until deleted

    def required(self) -> list[str]:
        return [n for n, d in self.params.items() if d is REQUIRED]

    def defaults(self) -> dict[str, Any]:
        return {n: d for n, d in self.params.items() if d is not REQUIRED and d is not OPTIONAL}


def _common(**overrides: Any) -> dict[str, Any]:
    """Parameters every type takes, in table order; overrides add or change entries."""
    base: dict[str, Any] = {"run_volume": REQUIRED, "additional_volumes": OPTIONAL}
    base.update(overrides)
    return base


_JULIA = {"image": "julia", "cpu": 0.1, "gpu": 0, "memory": "512Mi"}
_WORKERS = {
    "worker_cpu": OPTIONAL,
    "worker_gpu": OPTIONAL,
    "worker_memory": OPTIONAL,
    "worker_shell": OPTIONAL,
    "worker_start_script": OPTIONAL,
    "worker_envvars": OPTIONAL,
}
_EXPOSE = {"ports": OPTIONAL, "external": False}

JOB_TYPES: dict[str, JobType] = {
    t.name: t
    for t in (
        JobType(
            "JuliaBatch",
            "A Julia batch job in one container: non-parallel, multi-threaded or shared-memory parallel.",
            _common(
                start_script=REQUIRED,
                pkg_bundle=OPTIONAL,
                **_EXPOSE,
                **_JULIA,
                shell="master.sh",
                envvars=OPTIONAL,
            ),
            scalable=False,
            completes=True,
        ),
        JobType(
            "JuliaParBatch",
            "A Julia master with an array of workers for distributed-memory parallelism.",
            _common(
                start_script=REQUIRED,
                pkg_bundle=OPTIONAL,
                **_EXPOSE,
                **_JULIA,
                shell="master.sh",
                envvars=OPTIONAL,
                nworkers=0,
                **_WORKERS,
                restart="RestartAlways",
            ),
            scalable=True,
            completes=True,
        ),
        JobType(
            "JuliaParBatchWorkers",
            "An array of independent Julia batch units scaled as one (work queues).",
            _common(
                start_script=REQUIRED,
                pkg_bundle=OPTIONAL,
                **_EXPOSE,
                **_JULIA,
                shell="worker.sh",
                envvars=OPTIONAL,
                nworkers=0,
                restart="RestartAlways",
            ),
            scalable=True,
            completes=True,
        ),
        JobType(
            "Notebook",
            "An interactive Jupyter notebook with Julia kernels and optional workers.",
            _common(
                pkg_bundle=OPTIONAL,
                ports={"nb": (8888, 8888)},
                external=False,
                **_JULIA,
                shell="notebook.sh",
                envvars=OPTIONAL,
                **_WORKERS,
                restart="RestartAlways",
                passwd=OPTIONAL,
            ),
            scalable=True,
            completes=False,
        ),
        JobType(
            "PkgBuilder",
            "Builds or updates a Julia package bundle.",
            _common(
                builder_script=REQUIRED,
                pkg_bundle=REQUIRED,
                image="julia",
                cpu=1.0,
                gpu=0,
                memory="4Gi",
                shell="master.sh",
                envvars=OPTIONAL,
            ),
            scalable=False,
            completes=True,
        ),
        JobType(
            "Webserver",
            "A web server for a job's API, UI or files.",
            _common(
                cfg_file=REQUIRED,
                ports={"http": (80, 80), "https": (443, 443)},
                external=False,
                image="nginx",
                cpu=0.1,
                memory="512Mi",
                envvars=OPTIONAL,
                nworkers=OPTIONAL,
            ),
            scalable=True,
            completes=False,
        ),
        JobType(
            "MessageQ",
            "A message queue (RabbitMQ) for communication within or across jobs.",
            _common(
                cfg_file=REQUIRED,
                ports={
                    "amqptls": (5671, 5671),
                    "amqp": (5672, 5672),
                    "mgmttls": (15672, 15671),
                    "mgmt": (15672, 15672),
                },
                external=False,
                image="rabbitmq",
                cpu=1.0,
                memory="4Gi",
                envvars=OPTIONAL,
            ),
            scalable=False,
            completes=False,
        ),
        JobType(
            "Generic",
            "Any command in any container image.",
            _common(
                **_EXPOSE,
                image=REQUIRED,
                cpu=0.1,
                memory="512Mi",
                envvars=OPTIONAL,
                nworkers=OPTIONAL,
                command=OPTIONAL,
                args=OPTIONAL,
            ),
            scalable=True,
            completes=True,
        ),
    )
}


# Jobs that run until deleted and serve their ports: published as a Service by default.
SERVICE_TYPES = tuple(t.name for t in JOB_TYPES.values() if not t.completes)


def job_type(name: str) -> JobType:
    """The job type called `name`, or a ValueError that lists the valid ones."""
    try:
        return JOB_TYPES[name]
    except KeyError:
        raise ValueError(f"unknown job type {name!r}: expected one of {', '.join(JOB_TYPES)}") from None
