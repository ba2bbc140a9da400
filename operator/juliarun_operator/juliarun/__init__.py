"""The JuliaRun protocol alone: client, job types, value encoding, errors.

Knows nothing of Kubernetes or of the test server.
"""

from .client import (Client, Context, Job, JobInfo, JobScale, JobStatus, RetryPolicy,
                     current_job)
from .errors import (ApiError, HTTPError, InvalidResponse, JuliaRunError, ParameterError,
                     TransportError)
from .jobtypes import JOB_TYPES, PARAMETERS

__all__ = [
    "ApiError", "Client", "Context", "HTTPError", "InvalidResponse", "JOB_TYPES", "Job",
    "JobInfo", "JobScale", "JobStatus", "JuliaRunError", "PARAMETERS", "ParameterError",
    "RetryPolicy", "TransportError", "current_job",
]
