"""The JuliaRun protocol alone: client, job types, value encoding, errors.

Knows nothing of Kubernetes or of the test server.
"""

from .client import (
    Client,
    Context,
    Job,
    JobInfo,
    JobScale,
    JobStatus,
    RetryPolicy,
    TokenFile,
    current_job,
    public_url,
)
from .errors import (
    ApiError,
    HTTPError,
    InsecureTransport,
    InvalidResponse,
    JuliaRunError,
    ParameterError,
    Redirected,
    RequestTooLarge,
    TransportError,
)
from .jobtypes import JOB_TYPES, PARAMETERS

__all__ = [
    "JOB_TYPES",
    "PARAMETERS",
    "ApiError",
    "Client",
    "Context",
    "HTTPError",
    "InsecureTransport",
    "InvalidResponse",
    "Job",
    "JobInfo",
    "JobScale",
    "JobStatus",
    "JuliaRunError",
    "ParameterError",
    "Redirected",
    "RequestTooLarge",
    "RetryPolicy",
    "TokenFile",
    "TransportError",
    "current_job",
    "public_url",
]
