"""Keeping the JuliaRun token out of logs.

The token travels in the `jruntok` query parameter, and urllib3 logs request lines (with
their query) at DEBUG level. A filter on those loggers rewrites any `jruntok=...` first.
"""

from __future__ import annotations

import logging
import re

TOKEN_PARAM_RE = re.compile(r"(jruntok=)[^&\s\"']*")
REDACTED = "REDACTED"
_LOGGERS = ("urllib3.connectionpool", "urllib3", "requests", "aiohttp.access", "aiohttp.client")


def redact(text: str) -> str:
    """`text` with the value of any jruntok query parameter replaced."""
    return TOKEN_PARAM_RE.sub(r"\g<1>" + REDACTED, text)


class RedactingFilter(logging.Filter):
    def filter(self, record: logging.LogRecord) -> bool:
        message = record.getMessage()
        if "jruntok=" in message:
            record.msg, record.args = redact(message), None
        return True


def install_log_redaction() -> None:
    """Add the filter to the HTTP libraries' loggers (idempotent)."""
    for name in _LOGGERS:
        logger = logging.getLogger(name)
        if not any(isinstance(f, RedactingFilter) for f in logger.filters):
            logger.addFilter(RedactingFilter())
