"""Keeping secrets (the JuliaRun token, notebook passwords, URL credentials) out of text.

The token and the notebook password travel in the query string (`jruntok`, `passwd`), so
anything that echoes a request line can carry them: urllib3's DEBUG log, a proxy's or a
server's error page (aiohttp echoes an over-long request line), an exception. Two nets:

- patterns that need no registration: the values of `jruntok=` and `passwd=` (also
  URL-encoded as `jruntok%3D`, once or more), and the userinfo of a URL
  (`https://user:pass@host`);
- every secret registered with `register_secret`, in every form it can take on the way:
  raw, standard and URL-safe base64 with and without padding, and each of those
  URL-encoded (`%3D`, `%2B`, `%2F`, upper or lower case hex).

`redact(text)` finds every match of both nets in the original text, overlapping ones
included, merges the spans and only then replaces them: a registered value can only widen
what is hidden, never hide a match from another (a tenant's password `jruntok=ZXlK` that
starts before the token's base64 and runs into it hides both).

Registrations have an owner, each with its own cap, so that one owner's registrations never
push out another's: `OPERATOR` (the operator's own token and URL password), a tenant (by
namespace; its values must pass `unregistrable`, so that a password like `password` or `&`
cannot censor everybody's messages), or none (callers that do not say: the compartment
they shared before owners existed).

Logging is scrubbed with `redact` by log_scrubbing.py.
"""

from __future__ import annotations

import base64
import re
import threading
from collections import OrderedDict
from urllib.parse import quote, quote_plus

REDACTED = "REDACTED"
# A secret shorter than this is not registered: replacing "a" everywhere would ruin every
# message and protect nothing (a real token or password is longer). Tenants' secrets must
# pass the stricter `unregistrable`.
MIN_SECRET_LENGTH = 4
# Registered secrets kept per compartment, newest first; a registration of a value already
# kept makes it the newest again. A tenant's registrations push out only its own oldest.
MAX_SECRETS = 1024  # registered without an owner
MAX_OPERATOR_SECRETS = 64  # the operator's own (a rotated token leaves after 64 newer ones)
MAX_SECRETS_PER_OWNER = 128  # each tenant
# The owner of the operator's own secrets: not a valid namespace name, so no tenant is it.
OPERATOR = "(operator)"
# A tenant's secret is registered only if it is at least this long and passes
# `unregistrable` (no URL syntax, not only letters, not only digits and punctuation).
MIN_TENANT_SECRET_LENGTH = 8
URL_SYNTAX = "=&?/#%"
# Characters that join words in ordinary text (`kube-system`, `change-me`, `my.name`).
_WORD_JOINERS = frozenset(" -_.'")
# The query parameters whose values are secret wherever they appear.
SECRET_PARAMS = ("jruntok", "passwd")

# `jruntok=VALUE` or, inside a URL-encoded URL, `jruntok%3DVALUE` (`%253D` once more
# encoded...); VALUE ends at the next parameter (`&`, `%26`, `%2526`...), whitespace, a
# quote or an angle bracket.
_PARAM_RE = re.compile(
    r"(?i)(?:" + "|".join(SECRET_PARAMS) + r")(?:=|%(?:25)*3D)((?:(?!%(?:25)*26)[^&\s\"'<>])*)"
)
# scheme://userinfo@ : userinfo ends before the first '/', '?', '#' or whitespace.
_USERINFO_RE = re.compile(r"(?i)\b[a-z][a-z0-9+.-]*://([^/?#\s@]*)@")

# --- the registry -------------------------------------------------------------------------
#
# Forms are found through an index of 4-character keys (ASCII letters folded to lower case,
# so that %2f and %2F share a key). A form of at least _LONG characters is indexed under its
# keys at _STRIDE consecutive offsets (b..b+_STRIDE-1, b chosen by _window); any occurrence
# of it then covers a text position that is a multiple of _STRIDE with one of those keys
# there, so a scan looks up only every _STRIDE-th position of a text. Shorter forms are
# indexed at offset 0 and looked up at every position (only when there are any). A scan
# costs about the text's length over _STRIDE dictionary look-ups, whatever the number of
# secrets (a regular expression of thousands of alternatives costs about a millisecond a
# message and a recompile per registration).
_KEY = 4
_STRIDE = 5
_LONG = _KEY + _STRIDE - 1

_lock = threading.Lock()
# Compartments by owner (None: no owner given): value -> its forms, oldest first.
_owners: dict[str | None, OrderedDict[str, frozenset[str]]] = {}
# The owners holding each value (its forms are in the index while one does).
_holders: dict[str, set[str | None]] = {}
# How many registered values have each form (two could share one).
_form_count: dict[str, int] = {}
# key -> ((form, offset), ...) for long forms; key -> (form, ...) for short ones. Changed
# in place under the lock; a reader sees each entry whole (one tuple).
_long_index: dict[str, tuple[tuple[str, int], ...]] = {}
_short_index: dict[str, tuple[str, ...]] = {}
# Where each long form's keys start (see _window).
_form_window: dict[str, int] = {}

_ESCAPE_RE = re.compile(r"%[0-9A-Fa-f]{2}")
_ASCII_LOWER = str.maketrans("ABCDEFGHIJKLMNOPQRSTUVWXYZ", "abcdefghijklmnopqrstuvwxyz")


def _fold(text: str) -> str:
    """ASCII letters in lower case, the same length (str.lower may change a length)."""
    return text.lower() if text.isascii() else text.translate(_ASCII_LOWER)


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


def unregistrable(value: str) -> str:
    """Why `value`, supplied by a tenant, is not registered as a pattern ("" if it is).

    A tenant's pattern scrubs every message of every owner, so it must not match ordinary
    text: at least MIN_TENANT_SECRET_LENGTH characters, no URL syntax (`= & ? / # %`) and no
    control character, at least one letter, and at least one character that is neither a
    letter nor a word joiner (space - _ . '): a digit or another symbol. The reason never
    shows the value; it reads after a noun ("the notebook password " + reason).
    """
    if not value:
        return "is empty"
    if len(value) < MIN_TENANT_SECRET_LENGTH:
        return f"is shorter than {MIN_TENANT_SECRET_LENGTH} characters"
    if any(c in URL_SYNTAX for c in value):
        return "contains URL syntax (one of " + " ".join(URL_SYNTAX) + ")"
    if not value.isprintable():
        return "contains a control character"
    if not any(c.isalpha() for c in value):
        return "has no letter: it would match ordinary numbers, times or addresses"
    if all(c.isalpha() or c in _WORD_JOINERS for c in value):
        return "is only letters (and spaces - _ . '): it would match ordinary words"
    return ""


def _window(form: str, folded: str) -> int:
    """Where `form`'s keys go: the window of _STRIDE offsets whose keys other forms use the
    least. Tokens of one issuer share a long beginning and padded forms share their end, so
    a fixed place would pile them all into one entry that every scan would have to try."""
    last = len(form) - _LONG
    step = max(1, last // 15)
    best, best_load = 0, -1
    for base in (*range(0, last, step), last):
        load = sum(len(_long_index.get(folded[o : o + _KEY], ())) for o in range(base, base + _STRIDE))
        if best_load < 0 or load < best_load:
            best, best_load = base, load
            if load == 0:
                break
    return best


def _add_form(form: str) -> None:
    _form_count[form] = _form_count.get(form, 0) + 1
    if _form_count[form] > 1:
        return
    folded = _fold(form)
    if len(form) >= _LONG:
        base = _form_window[form] = _window(form, folded)
        for offset in range(base, base + _STRIDE):
            key = folded[offset : offset + _KEY]
            _long_index[key] = (*_long_index.get(key, ()), (form, offset))
    else:
        key = folded[:_KEY]
        _short_index[key] = (*_short_index.get(key, ()), form)


def _remove_form(form: str) -> None:
    _form_count[form] -= 1
    if _form_count[form] > 0:
        return
    del _form_count[form]
    folded = _fold(form)
    if len(form) >= _LONG:
        base = _form_window.pop(form)
        for offset in range(base, base + _STRIDE):
            key = folded[offset : offset + _KEY]
            rest = tuple(e for e in _long_index.get(key, ()) if e != (form, offset))
            if rest:
                _long_index[key] = rest
            else:
                _long_index.pop(key, None)
    else:
        key = folded[:_KEY]
        short = tuple(f for f in _short_index.get(key, ()) if f != form)
        if short:
            _short_index[key] = short
        else:
            _short_index.pop(key, None)


def _cap(owner: str | None) -> int:
    return (
        MAX_SECRETS if owner is None else MAX_OPERATOR_SECRETS if owner == OPERATOR else MAX_SECRETS_PER_OWNER
    )


def _drop(owner: str | None, value: str) -> None:
    forms = _owners[owner].pop(value)
    _holders[value].discard(owner)
    if not _holders[value]:
        del _holders[value]
        for form in forms:
            _remove_form(form)


def register_secret(value: str | None, owner: str | None = None) -> bool:
    """Scrub `value` (in all its forms) from every later `redact` and log record; True if
    it is registered now.

    Call it for each token and password as soon as it is read, and again when it is used
    (cheap: it keeps a secret in use among the newest of its owner's).

    `owner`: OPERATOR for the operator's own token and URL password; a tenant's namespace
    for what a tenant supplied (its Secrets' tokens and passwords); None when the caller
    cannot say. Each owner keeps its newest MAX_SECRETS_PER_OWNER (OPERATOR:
    MAX_OPERATOR_SECRETS, None: MAX_SECRETS), so registrations of one owner never push out
    another's. A tenant's value that `unregistrable` refuses is not registered (False):
    refuse to use it, with that reason. Without an owner, a value some owner already keeps
    is only made the newest there; values shorter than MIN_SECRET_LENGTH are ignored.
    """
    if not value or len(value) < MIN_SECRET_LENGTH:
        return False
    if owner is not None and owner != OPERATOR and unregistrable(value):
        return False
    with _lock:
        holders = _holders.get(value)
        if holders and (owner is None or owner in holders):
            for holder in holders:
                _owners[holder].move_to_end(value)
            return True
        if holders:
            forms = _owners[next(iter(holders))][value]
            holders.add(owner)
        else:
            forms = frozenset(map(_upper_escapes, secret_forms(value)))
            _holders[value] = {owner}
            for form in forms:
                _add_form(form)
        compartment = _owners.setdefault(owner, OrderedDict())
        compartment[value] = forms
        cap = _cap(owner)
        while len(compartment) > cap:
            _drop(owner, next(iter(compartment)))
        return True


def forget_owner(owner: str | None) -> None:
    """Drop every secret `owner` registered (a namespace no longer served); a value another
    owner registered too stays."""
    with _lock:
        while _owners.get(owner):
            _drop(owner, next(iter(_owners[owner])))
        _owners.pop(owner, None)


def forget_secrets() -> None:
    """Drop every registered secret (for tests)."""
    with _lock:
        _owners.clear()
        _holders.clear()
        _form_count.clear()
        _long_index.clear()
        _short_index.clear()
        _form_window.clear()


# --- scrubbing ----------------------------------------------------------------------------


def _matches(text: str, probe: str, start: int, form: str) -> bool:
    """Whether `form` (its escapes in upper case) is in `text` at `start`, whatever the case
    of the text's escapes (`probe`: `text` with its escapes in upper case)."""
    if text.startswith(form, start):
        return True
    if probe is text:  # no escape in the text
        return False
    if "%" in text[max(0, start - 2) : start]:
        # An escape of the text's that starts before `start` ("%ac" + base64) is none of
        # the form's: canonicalise the text from `start` only.
        return _upper_escapes(text[start : start + len(form)]) == form
    return probe.startswith(form, start)


def _registered_spans(text: str, spans: list[tuple[int, int]]) -> None:
    long_index, short_index = _long_index, _short_index
    if not (long_index or short_index):
        return
    folded = _fold(text)
    probe = _upper_escapes(text)
    last = len(text) - _KEY
    if long_index:
        get = long_index.get
        for pos in range(0, last + 1, _STRIDE):
            entries = get(folded[pos : pos + _KEY])
            if entries:
                for form, offset in entries:
                    start = pos - offset
                    if start >= 0 and _matches(text, probe, start, form):
                        spans.append((start, start + len(form)))
    if short_index:
        for pos in [p for p in range(last + 1) if folded[p : p + _KEY] in short_index]:
            for form in short_index.get(folded[pos : pos + _KEY], ()):
                if _matches(text, probe, pos, form):
                    spans.append((pos, pos + len(form)))


def redact(text: str) -> str:
    """`text` without any registered secret, secret query value or URL userinfo."""
    spans: list[tuple[int, int]] = []
    _registered_spans(text, spans)
    lower = text.lower()  # the patterns are slow to fail on long texts: look first
    if any(p in lower for p in SECRET_PARAMS):
        spans += (m.span(1) for m in _PARAM_RE.finditer(text) if m.end(1) > m.start(1))
    if "@" in text and "://" in text:
        spans += (m.span(1) for m in _USERINFO_RE.finditer(text) if m.end(1) > m.start(1))
    if not spans:
        return text
    spans.sort()
    out: list[str] = []
    done = 0  # text[:done] is in `out`
    start, end = spans[0]
    for s, e in spans[1:]:
        if s <= end:  # overlapping or touching: one span
            end = max(end, e)
            continue
        out += (text[done:start], REDACTED)
        done, start, end = end, s, e
    out += (text[done:start], REDACTED, text[end:])
    return "".join(out)


def cut(text: str, limit: int = 200) -> str:
    """`text` scrubbed, then shortened to `limit` characters (in that order: a cut through
    the middle of a secret would leave a piece no pattern recognises)."""
    text = redact(text)
    return text if len(text) <= limit else text[:limit] + "..."
