"""The JuliaRun commands (one call or a few each) and `types`, which needs no connection."""

from __future__ import annotations

import argparse
import sys
from dataclasses import asdict
from pathlib import Path
from typing import Any

from ..juliarun import JOB_TYPES, PARAMETERS, Client, Job, JuliaRunError, ParameterError
from ..juliarun import jobtypes as jt
from ..juliarun.errors import ApiError
from ..output import flow_yaml
from . import importing
from .connection import connected, context_from_args, find_job
from .params import parse_params
from .show import EXIT_ERROR, info_data, show, state, status_data

# --- JuliaRun commands ------------------------------------------------------------------


@connected
def cmd_system(client: Client, args: argparse.Namespace) -> int:
    ready = client.get_system_status()
    show(
        args,
        {"ready": ready, "url": client.context.url, "namespace": client.context.namespace},
        ["URL", "NAMESPACE", "READY"],
        [[client.context.url, client.context.namespace, ready]],
    )
    return 0 if ready else EXIT_ERROR


def no_jobs(client: Client) -> str:
    return f"no jobs in {client.context.describe()}"


@connected
def cmd_jobs(client: Client, args: argparse.Namespace) -> int:
    if not args.all:
        jobs = sorted(client.list_jobs().items())
        show(args, [{"name": n, "type": t} for n, t in jobs], ["NAME", "TYPE"], jobs, empty=no_jobs(client))
        return 0
    infos = sorted(client.get_all_job_info().values(), key=lambda i: i.name)
    show(
        args,
        [info_data(i) for i in infos],
        ["NAME", "TYPE", "STATUS", "RUNNING/REQUESTED", "ENDPOINT"],
        [
            [i.name, i.type, state(i.status), f"{i.scale.running}/{i.scale.requested}", i.endpoints]
            for i in infos
        ],
        empty=no_jobs(client),
    )
    return 0


@connected
def cmd_submit(client: Client, args: argparse.Namespace) -> int:
    job = Job(args.job_type, args.name)
    client.submit_job(job, **parse_params(args.params))
    print(f"submitted {job.type} {job.name}")
    return 0


@connected
def cmd_update(client: Client, args: argparse.Namespace) -> int:
    params = parse_params(args.params)  # before find_job: a typo needs no round trip
    if not params:
        raise ParameterError("nothing to update: give at least one PARAM=VALUE")
    job = find_job(client, args)
    client.update_job(job, **params)
    print(f"updated {job.type} {job.name}: {', '.join(params)}")
    return 0


@connected
def cmd_status(client: Client, args: argparse.Namespace) -> int:
    job = find_job(client, args)
    status = client.get_job_status(job)
    show(
        args,
        status_data(job, status),
        ["NAME", "TYPE", "STATUS", "CREATED", "WORKERS STARTED", "WORKERS SUCCEEDED", "NOTEBOOK"],
        [
            [
                job.name,
                job.type,
                state(status),
                status.created,
                status.workers_started,
                status.workers_succeeded,
                status.notebook,
            ]
        ],
    )
    return 0


@connected
def cmd_scale(client: Client, args: argparse.Namespace) -> int:
    if args.wait and args.count is None:
        raise ParameterError("--wait needs N, the number of workers to wait for")
    job = find_job(client, args)
    if args.count is None:
        scale = client.get_job_scale(job)
        show(
            args,
            {"name": job.name, **asdict(scale)},
            ["NAME", "RUNNING", "REQUESTED"],
            [[job.name, scale.running, scale.requested]],
        )
        return 0
    if not client.set_job_scale(job, args.count):
        raise JuliaRunError(f"JuliaRun did not accept scale {args.count} for {job.name}")
    print(f"{job.name}: requested {args.count}")
    if args.wait:
        scale = client.wait_for_workers(job, args.count, timeout=args.timeout, interval=0.5)
        print(f"{job.name}: {scale.running} running")
    return 0


@connected
def cmd_endpoint(client: Client, args: argparse.Namespace) -> int:
    job = find_job(client, args)
    endpoints = client.get_job_endpoint(job)
    show(args, endpoints, ["ENDPOINT"], [[e] for e in endpoints], empty=f"{job.name} has no endpoints")
    return 0


def cmd_logs(args: argparse.Namespace) -> int:
    """Logs of a JuliaRun job, or (--resource) of the job behind a JuliaRunJob."""
    context = context_from_args(args)
    kept = ""
    if args.resource:
        from .. import resources  # the kubernetes client: only for --resource

        job, context, kept = resources.resolve(
            args.name, args.kube_namespace, args.kubeconfig, context, args.attempt
        )
    client = Client(context)
    try:
        job = job if args.resource else find_job(client, args)
        text = client.tail_job(job, stream=args.stream, count=args.count)
    except ApiError as exc:  # JuliaRun answered: no such job (deleted by suspend or a deadline)
        if not kept:
            raise
        text = f"# JuliaRun job {job.name}: {exc.reason}; its last lines, as the operator kept them:\n{kept}"
    finally:
        client.close()
    print(text, end="" if text.endswith("\n") or not text else "\n")
    return 0


@connected
def cmd_delete(client: Client, args: argparse.Namespace) -> int:
    job = find_job(client, args)
    if not client.delete_job(job, force=args.force):
        raise JuliaRunError(f"JuliaRun did not delete {job.name}")
    print(f"deleted {job.type} {job.name}")
    return 0


@connected
def cmd_import(client: Client, args: argparse.Namespace) -> int:
    """Observe manifests of the namespace's jobs (or of the NAMEs given): a read, never a write."""
    infos = client.get_all_job_info()
    unknown = [n for n in args.names if n not in infos]
    if unknown:
        raise JuliaRunError(f"no job named {', '.join(unknown)} in {client.context.describe()}")
    chosen = {n: i for n, i in infos.items() if not args.names or n in args.names}
    source = f"JuliaRun namespace {client.context.namespace}"
    items, skipped = importing.manifests(chosen, source, args.kube_namespace, args.credentials_ref)
    for warning in skipped:
        print(f"warning: {warning}", file=sys.stderr)
    if not items:
        print(no_jobs(client) + (" that a JuliaRunJob can have" if skipped else ""), file=sys.stderr)
        return 0
    if args.out_dir is None:
        print(importing.stream(items), end="")
        return 0
    try:
        written = importing.write_files(Path(args.out_dir), items)
    except importing.Exists as exc:
        print(f"error: not overwriting {exc}: nothing was written", file=sys.stderr)
        return EXIT_ERROR
    for path in written:
        print(f"wrote {path}")
    return 0


@connected
def cmd_url(client: Client, args: argparse.Namespace) -> int:
    print(client.get_encoded_url(find_job(client, args), args.port))
    return 0


# --- the job-type table (no connection needed) ------------------------------------------


def kind_text(param: jt.Param) -> str:
    return f"{param.kind}({'|'.join(param.choices)})" if param.choices else param.kind


def use_text(default: Any) -> str:
    """How a type takes a parameter: required, optional, or its default in PARAM=VALUE syntax."""
    if default is jt.REQUIRED:
        return "required"
    if default is jt.OPTIONAL:
        return "optional"
    return "default " + (default if isinstance(default, str) else flow_yaml(default))


# Parameters the CRD carries in a field of its own making: the workers are the scale
# subresource's `spec.parallelism` (tests/unit/test_cli_args.py checks every field is the CRD's).
CRD_FIELD_OF = {"nworkers": "parallelism"}


def crd_field(param: jt.Param) -> str:
    """The JuliaRunJob field that sets the parameter: `spec.runVolume` for run_volume."""
    return "spec." + CRD_FIELD_OF.get(param.name, param.field)


def cmd_types(args: argparse.Namespace) -> int:
    types = [JOB_TYPES[args.job_type]] if args.job_type else list(JOB_TYPES.values())
    data = [
        {
            "type": t.name,
            "description": t.description,
            "scalable": t.scalable,
            "completes": t.completes,
            "parameters": [
                {
                    "name": n,
                    "field": crd_field(PARAMETERS[n]),
                    "kind": PARAMETERS[n].kind,
                    "required": d is jt.REQUIRED,
                    **({} if d in (jt.REQUIRED, jt.OPTIONAL) else {"default": d}),
                    **({"choices": list(PARAMETERS[n].choices)} if PARAMETERS[n].choices else {}),
                    "description": PARAMETERS[n].description,
                }
                for n, d in t.params.items()
            ],
        }
        for t in types
    ]
    rows = [
        [t.name, n, crd_field(p), kind_text(p), use_text(d), p.description]
        for t in types
        for n, d in t.params.items()
        for p in [PARAMETERS[n]]
    ]
    show(args, data, ["TYPE", "PARAMETER", "CRD FIELD", "KIND", "USE", "DESCRIPTION"], rows)
    return 0
