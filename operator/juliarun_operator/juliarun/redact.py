"""Keeping secrets (the JuliaRun token, notebook passwords, URL credentials) out of text.

The token and the notebook password travel in the query string (`jruntok`, `passwd`), so
anything that echoes a request line can carry them: urllib3's DEBUG log, a proxy's or a
server's error page (aiohttp echoes an over-long request line), an exception. Two nets:

- patterns that need no registration: the values of `jruntok=` and `passwd=` (also
  URL-encoded as `jruntok%3D`), and the userinfo of a URL (`https://user:pass@host`);
- every secret registered with `register_secret`, in every form it can take on the way:
  raw, standard and URL-safe base64 with and without padding, and each of those
  URL-encoded (`%3D`, `%2B`, `%2F`, upper or lower case hex).

`redact(text)` applies both; errors apply it where they are built, and `SecretFilter`
applies it to log records. `install_secret_filter()` puts the filter into every log
record the process creates (through the record factory), so handlers added later, such as
kopf's Event poster, never see a record that was not scrubbed.
"""

from __future__ import annotations

import base64
import logging
import re
import threading
from collections import OrderedDict
from urllib.parse import quote, quote_plus

REDACTED = "REDACTED"
# A secret shorter than this is not registered: replacing "a" everywhere would ruin every
# message and protect nothing (a real token or password is longer).
MIN_SECRET_LENGTH = 4
# Registered secrets kept, newest first; a rotated token falls out after this many others.
MAX_SECRETS = 256
# The query parameters whose values are secret wherever they appear.
SECRET_PARAMS = ("jruntok", "passwd")

# `jruntok=VALUE` or, inside a URL-encoded URL, `jruntok%3DVALUE`; VALUE ends at the next
# parameter (`&`, `%26`), whitespace, a quote or an angle bracket.
_PARAM_RE = re.compile(
    r"(?i)(" + "|".join(SECRET_PARAMS) + r")(=|%3D)((?:(?!%26)[^&\s\"'<>])*)")
# scheme://userinfo@ : userinfo ends before the first '/', '?', '#' or whitespace.
_USERINFO_RE = re.compile(r"(?i)\b([a-z][a-z0-9+.-]*://)[^/?#\s@]*@")

_lock = threading.Lock()
_secrets: OrderedDict[str, None] = OrderedDict()
_pattern: re.Pattern[str] | None = None


def secret_forms(value: str) -> set[str]:
    """Every text `value` can turn into on its way to JuliaRun and back in an echo."""
    raw = value.encode()
    bases = {value, base64.b64encode(raw).decode(), base64.urlsafe_b64encode(raw).decode()}
    bases |= {b.rstrip("=") for b in bases}
    forms = set()
    for b in bases:
        forms |= {b, quote(b, safe=""), quote(b), quote_plus(b)}
    return {f for f in forms if f}


def _form_pattern(form: str) -> str:
    # Percent escapes match in either case (%3D and %3d); the rest literally.
    parts = re.split(r"(%[0-9A-Fa-f]{2})", form)
    out = []
    for i, part in enumerate(parts):
        if i % 2:
            out.append("%" + "".join(f"[{c.upper()}{c.lower()}]" if c.isalpha() else c for c in part[1:]))
        else:
            out.append(re.escape(part))
    return "".join(out)


def register_secret(value: str | None) -> None:
    """Scrub `value` (in all its forms) from every later `redact` and log record.

    Call it for each token and password as soon as it is read. Idempotent; values shorter
    than MIN_SECRET_LENGTH are ignored; the newest MAX_SECRETS values are kept.
    """
    global _pattern
    if not value or len(value) < MIN_SECRET_LENGTH:
        return
    with _lock:
        if value in _secrets:
            _secrets.move_to_end(value)
            return
        _secrets[value] = None
        while len(_secrets) > MAX_SECRETS:
            _secrets.popitem(last=False)
        forms = set().union(*(secret_forms(s) for s in _secrets))
        # Longest first, so a form that contains another is replaced whole.
        _pattern = re.compile("|".join(_form_pattern(f) for f in sorted(forms, key=len, reverse=True)))


def forget_secrets() -> None:
    """Drop every registered secret (for tests)."""
    global _pattern
    with _lock:
        _secrets.clear()
        _pattern = None


def redact(text: str) -> str:
    """`text` without any registered secret, secret query value or URL userinfo."""
    pattern = _pattern
    if pattern is not None:
        text = pattern.sub(REDACTED, text)
    text = _PARAM_RE.sub(lambda m: f"{m.group(1)}{m.group(2)}{REDACTED}", text)
    return _USERINFO_RE.sub(rf"\g<1>{REDACTED}@", text)


def cut(text: str, limit: int = 200) -> str:
    """`text` scrubbed, then shortened to `limit` characters (in that order: a cut through
    the middle of a secret would leave a piece no pattern recognises)."""
    text = redact(text)
    return text if len(text) <= limit else text[:limit] + "..."


# Attributes every LogRecord has; any other is an `extra` (JSON formatters print those).
_STANDARD_ATTRS = frozenset(logging.makeLogRecord({}).__dict__) | {"message", "asctime"}


class SecretFilter(logging.Filter):
    """Scrubs a log record's message, arguments, exception, stack and string extras;
    drops nothing. Idempotent.

    Works on a handler or a logger; `install_secret_filter` applies it to every record.
    The exception is formatted here (and cached in `exc_text`, which formatters use as is),
    because an exception's text may hold what its message did not.
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
        if record.exc_info and not record.exc_text:
            record.exc_text = self._formatter.formatException(record.exc_info)
        if record.exc_text:
            record.exc_text = redact(record.exc_text)
        if record.stack_info:
            record.stack_info = redact(record.stack_info)
        for name, value in record.__dict__.items():
            if isinstance(value, str) and name not in _STANDARD_ATTRS:
                record.__dict__[name] = redact(value)
        return True


_installed = False


def install_secret_filter() -> None:
    """Scrub every log record this process creates, whichever logger or handler it reaches.

    Wraps the log record factory (idempotent), so it covers handlers that do not exist yet.
    """
    global _installed
    with _lock:
        if _installed:
            return
        previous = logging.getLogRecordFactory()
        secret_filter = SecretFilter()

        def factory(*args, **kwargs) -> logging.LogRecord:
            record = previous(*args, **kwargs)
            secret_filter.filter(record)
            return record

        logging.setLogRecordFactory(factory)
        _installed = True
