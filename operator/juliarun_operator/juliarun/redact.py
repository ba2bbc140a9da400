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
from typing import Any
from urllib.parse import quote, quote_plus

REDACTED = "REDACTED"
# A secret shorter than this is not registered: replacing "a" everywhere would ruin every
# message and protect nothing (a real token or password is longer).
MIN_SECRET_LENGTH = 4
# Registered secrets kept, newest first; a rotated token falls out after this many others.
MAX_SECRETS = 1024
# The query parameters whose values are secret wherever they appear.
SECRET_PARAMS = ("jruntok", "passwd")

# `jruntok=VALUE` or, inside a URL-encoded URL, `jruntok%3DVALUE`; VALUE ends at the next
# parameter (`&`, `%26`), whitespace, a quote or an angle bracket.
_PARAM_RE = re.compile(r"(?i)(" + "|".join(SECRET_PARAMS) + r")(=|%3D)((?:(?!%26)[^&\s\"'<>])*)")
# scheme://userinfo@ : userinfo ends before the first '/', '?', '#' or whitespace.
_USERINFO_RE = re.compile(r"(?i)\b([a-z][a-z0-9+.-]*://)[^/?#\s@]*@")

_lock = threading.Lock()
# Registered secrets, oldest first, each with its forms (kept to take them out again).
_secrets: OrderedDict[str, frozenset[str]] = OrderedDict()
# Every form of every registered secret, by its first MIN_SECRET_LENGTH characters, longest
# first; and how many secrets have each form (two could share one). A scan looks each
# position of a text up here: the cost is the text's length, whatever the number of secrets
# (a regular expression of thousands of alternatives costs about a millisecond a message).
# Changed in place under the lock; a reader sees each entry whole (one tuple).
_index: dict[str, tuple[str, ...]] = {}
_form_count: dict[str, int] = {}
_ESCAPE_RE = re.compile(r"%[0-9A-Fa-f]{2}")


def _upper_escapes(text: str) -> str:
    """`text` with percent escapes in upper case (%3d -> %3D), the same length: forms and
    texts are compared so, whatever case a server or proxy re-encoded them in."""
    return _ESCAPE_RE.sub(lambda m: m.group(0).upper(), text) if "%" in text else text


def secret_forms(value: str) -> set[str]:
    """Every text `value` can turn into on its way to JuliaRun and back in an echo."""
    raw = value.encode()
    bases = {value, base64.b64encode(raw).decode(), base64.urlsafe_b64encode(raw).decode()}
    bases |= {b.rstrip("=") for b in bases}
    forms = set()
    for b in bases:
        forms |= {b, quote(b, safe=""), quote(b), quote_plus(b)}
    return {f for f in forms if len(f) >= MIN_SECRET_LENGTH}


def _add_form(form: str) -> None:
    _form_count[form] = _form_count.get(form, 0) + 1
    if _form_count[form] == 1:
        prefix = form[:MIN_SECRET_LENGTH]
        _index[prefix] = tuple(sorted((*_index.get(prefix, ()), form), key=len, reverse=True))


def _remove_form(form: str) -> None:
    _form_count[form] -= 1
    if _form_count[form] == 0:
        del _form_count[form]
        prefix = form[:MIN_SECRET_LENGTH]
        rest = tuple(f for f in _index.get(prefix, ()) if f != form)
        if rest:
            _index[prefix] = rest
        else:
            _index.pop(prefix, None)


def register_secret(value: str | None) -> None:
    """Scrub `value` (in all its forms) from every later `redact` and log record.

    Call it for each token and password as soon as it is read, and again when it is used
    (cheap: it keeps a secret in use among the newest). Values shorter than
    MIN_SECRET_LENGTH are ignored; the MAX_SECRETS most recently registered are kept.
    """
    if not value or len(value) < MIN_SECRET_LENGTH:
        return
    with _lock:
        if value in _secrets:
            _secrets.move_to_end(value)
            return
        forms = frozenset(map(_upper_escapes, secret_forms(value)))
        _secrets[value] = forms
        for form in forms:
            _add_form(form)
        while len(_secrets) > MAX_SECRETS:
            for form in _secrets.popitem(last=False)[1]:
                _remove_form(form)


def forget_secrets() -> None:
    """Drop every registered secret (for tests)."""
    with _lock:
        _secrets.clear()
        _index.clear()
        _form_count.clear()


def _scrub_registered(text: str) -> str:
    index = _index
    if not index:
        return text
    probe = _upper_escapes(text)  # positions as in text; only escapes' case differs
    out: list[str] = []
    i = last = 0
    end = len(text) - MIN_SECRET_LENGTH
    while i <= end:
        # The text as it is too: a '%' before base64 ("%ac...") is no escape of ours.
        at, upper = text[i : i + MIN_SECRET_LENGTH], probe[i : i + MIN_SECRET_LENGTH]
        forms = index.get(upper, ()) + (index.get(at, ()) if at != upper else ())
        if forms:
            for form in forms:
                if probe.startswith(form, i) or text.startswith(form, i):
                    out += (text[last:i], REDACTED)
                    i = last = i + len(form)
                    break
            else:
                i += 1
        else:
            i += 1
    if not out:
        return text
    out.append(text[last:])
    return "".join(out)


def redact(text: str) -> str:
    """`text` without any registered secret, secret query value or URL userinfo."""
    text = _scrub_registered(text)
    lower = text.lower()  # the patterns are slow to fail on long texts: look first
    if any(p in lower for p in SECRET_PARAMS):
        text = _PARAM_RE.sub(lambda m: f"{m.group(1)}{m.group(2)}{REDACTED}", text)
    if "@" in text and "://" in text:
        text = _USERINFO_RE.sub(rf"\g<1>{REDACTED}@", text)
    return text


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

        def factory(*args: Any, **kwargs: Any) -> logging.LogRecord:
            record = previous(*args, **kwargs)
            secret_filter.filter(record)
            return record

        logging.setLogRecordFactory(factory)
        _installed = True
