"""Every log record this process creates scrubbed with `redact` (redact.py).

`install_log_scrubbing()` scrubs each record as it is made (through the record factory, so
handlers added later, such as kopf's Event poster, see scrubbed records only), tracebacks
and stacks included, and wraps the formatters of the root logger's handlers so that their
output (text or JSON) is scrubbed once more as a whole.
"""

from __future__ import annotations

import logging
import threading
from typing import Any

from .redact import redact

# Attributes every LogRecord has; any other is an `extra` (JSON formatters print those).
_STANDARD_ATTRS = frozenset(logging.makeLogRecord({}).__dict__) | {"message", "asctime"}


class SecretFilter(logging.Filter):
    """Scrubs a log record's message, arguments, exception, stack and string extras;
    drops nothing. Idempotent.

    Works on a handler or a logger; `install_secret_filter` applies it to every record.
    The exception is formatted here into `exc_text` (scrubbed) and `exc_info` is cleared:
    logging's Formatter prints `exc_text` as it is, but a JSON formatter (python-json-logger,
    kopf's --log-format json) formats `exc_info` afresh whenever it is set.
    """

    _formatter = logging.Formatter()

    def filter(self, record: logging.LogRecord) -> bool:
        try:
            message = record.getMessage()
        except Exception:  # a broken format string: leave it to logging's own error path
            return True
        scrubbed = redact(message)
        if scrubbed != message or record.args:
            record.msg, record.args = scrubbed, None
        if record.exc_info:
            if not record.exc_text:
                record.exc_text = self._formatter.formatException(record.exc_info)
            record.exc_info = None
        if record.exc_text:
            record.exc_text = redact(record.exc_text)
        if record.stack_info:
            record.stack_info = redact(record.stack_info)
        for name, value in record.__dict__.items():
            if isinstance(value, str) and name not in _STANDARD_ATTRS:
                record.__dict__[name] = redact(value)
        return True


class ScrubbingFormatter(logging.Formatter):
    """Another formatter's output, scrubbed as a whole: a last net for what a formatter
    adds from a record's other attributes (a JSON formatter prints dict extras too)."""

    def __init__(self, inner: logging.Formatter | None = None):
        super().__init__()
        self.inner = inner or logging.Formatter()

    def format(self, record: logging.LogRecord) -> str:
        return redact(self.inner.format(record))


_installed = False
_install_lock = threading.Lock()


def install_secret_filter() -> None:
    """Scrub every log record this process creates, whichever logger or handler it reaches.

    Wraps the log record factory (idempotent), so it covers handlers that do not exist yet.
    """
    global _installed
    with _install_lock:
        if _installed:
            return
        previous = logging.getLogRecordFactory()
        secret_filter = SecretFilter()

        def factory(*args: Any, **kwargs: Any) -> logging.LogRecord:
            record = previous(*args, **kwargs)
            secret_filter.filter(record)
            return record

        logging.setLogRecordFactory(factory)
        _installed = True


def install_log_scrubbing(logger: logging.Logger | None = None) -> None:
    """Scrub every log record (`install_secret_filter`) and wrap the formatter of each
    handler of `logger` (default: the root logger) in a ScrubbingFormatter. Idempotent.

    Call it after the log handlers are configured (after `kopf.configure(...)`): a handler
    added later gets scrubbed records, but its formatter is not wrapped.
    """
    install_secret_filter()
    for handler in (logger or logging.getLogger()).handlers:
        if not isinstance(handler.formatter, ScrubbingFormatter):
            handler.setFormatter(ScrubbingFormatter(handler.formatter))
