"""No registered secret survives redact(), in any encoding, whatever else is registered and
whatever text surrounds it: two secrets that overlap, prefix or contain each other or the
parameter names, in texts built from their encodings, the parameter patterns and noise."""

from __future__ import annotations

import base64
import re
from urllib.parse import quote, quote_plus, urlencode

import pytest
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from juliarun_operator.juliarun import redact as rd

# The marker a scrubbed span becomes, here one no form can hold: any form still in the
# output then lies in text that no span covered (the real marker, REDACTED, could make one
# with its neighbours: a secret "EDx" after a scrubbed span followed by "x").
MARK = "\x00"
JWT_LIKE = "eyJhbGciOiJSUzI1NiIsImtpZCI6Ik1ZIn0.eyJzdWIiOiJzeXN0ZW06c2EifQ.c2lnbmF0dXJl"


@pytest.fixture(autouse=True)
def clean_registry(monkeypatch):
    monkeypatch.setattr(rd, "REDACTED", MARK)
    rd.forget_secrets()
    yield
    rd.forget_secrets()


def encodings(secret: str) -> set[str]:
    """What the issue names: raw, base64 with and without padding (standard and URL-safe),
    each URL-encoded with upper- and lower-case escapes (and with '/' kept, as quote does)."""
    raw = secret.encode()
    std, safe = base64.b64encode(raw).decode(), base64.urlsafe_b64encode(raw).decode()
    out = set()
    for text in {secret, std, std.rstrip("="), safe, safe.rstrip("=")}:
        for encoded in {text, quote(text, safe=""), quote(text), quote_plus(text)}:
            out |= {encoded, re.sub(r"%[0-9A-F]{2}", lambda m: m.group(0).lower(), encoded)}
    return out


def survivors(out: str, *secrets: str) -> list[str]:
    return sorted(form for secret in secrets for form in encodings(secret) if form in out)


PIECE = 10


def pieces_left(out: str, secret: str) -> list[str]:
    """The PIECE-character pieces of `secret`'s base64 encodings in `out`: a scrubber that
    hides only a secret's start (another secret's form swallowed it) leaves the rest. (Noise
    has no letter or digit, so it makes no such piece.)"""
    raw = secret.encode()
    b64 = {base64.b64encode(raw).decode(), base64.urlsafe_b64encode(raw).decode()}
    forms = {f for f in encodings(secret) if any(b.rstrip("=")[:PIECE] in f for b in b64)}
    return sorted({f[i : i + PIECE] for f in forms for i in range(len(f) - PIECE + 1)} & set(_windows(out)))


def _windows(text: str) -> list[str]:
    return [text[i : i + PIECE] for i in range(len(text) - PIECE + 1)]


# Characters of the texts that matter: base64's, URL syntax, escapes' hex, the parameter names'.
ALPHABET = st.sampled_from("aAbBcdDeEfFjJklnoprstuwxyzZ0123456789+/=-_.%&?#@: 'ä")
NOISE = st.text(st.sampled_from(" '#@:ä?&!,;()<>\""), max_size=12)
PARTS = st.sampled_from(
    [
        "jruntok",
        "passwd",
        "jruntok=",
        "passwd=",
        "jruntok%3D",
        "jruntok%253D",
        "%3D",
        "%3d",
        "=",
        "&",
        "%26",
        "ZXlK",
        "eyJ",
    ]
)
TOKENS = st.one_of(
    st.just(JWT_LIKE),
    st.builds(lambda s: "eyJ" + s, st.text(ALPHABET, min_size=1, max_size=40)),
    st.text(min_size=rd.MIN_SECRET_LENGTH, max_size=40).filter(lambda s: MARK not in s),
)


@st.composite
def password_near(draw: st.DrawFn, token: str) -> str:
    """A password that overlaps, prefixes or contains the token (or one of its encodings),
    or the parameter names, or neither."""
    form = draw(st.sampled_from(sorted(encodings(token))))
    i = draw(st.integers(0, len(form)))
    j = draw(st.integers(i, len(form)))
    piece = form[i:j]
    choice = draw(st.sampled_from(["before+start", "inside", "end+after", "contains", "param", "free"]))
    if choice == "before+start":  # runs into the token's start: jruntok=ZXlK
        value = draw(PARTS) + form[:j]
    elif choice == "inside":
        value = piece
    elif choice == "end+after":
        value = form[i:] + draw(NOISE)
    elif choice == "contains":
        value = draw(NOISE) + form + draw(NOISE)
    elif choice == "param":
        value = draw(PARTS) + draw(NOISE)
    else:
        value = draw(st.text(ALPHABET, max_size=30))
    return value


def joins(first: str, second: str) -> list[str]:
    """Each form of `first` run into a form of `second` where one's end is the other's
    start (`jruntok=ZXlK` + `ZXlKaGJH...` -> `jruntok=ZXlKaGJH...`)."""
    out = []
    for a in encodings(first):
        for b in encodings(second):
            out += [a + b[k:] for k in range(1, min(len(a), len(b))) if a.endswith(b[:k])]
    return sorted(out)


@st.composite
def texts(draw: st.DrawFn, *secrets: str) -> str:
    """Text made of the secrets' encodings (also run into each other), the parameter
    patterns around them and noise."""
    forms = sorted(f for s in secrets for f in encodings(s))
    joined = [j for a in secrets for b in secrets if a != b for j in joins(a, b)]
    chunk = st.one_of(
        st.sampled_from(forms),
        PARTS,
        NOISE,
        st.builds(lambda p, f: p + f, PARTS, st.sampled_from(forms)),
        *([st.sampled_from(joined)] if joined else []),
    )
    return "".join(draw(st.lists(chunk, min_size=1, max_size=12)))


@settings(max_examples=400, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.data())
def test_no_registered_secret_survives_in_any_encoding(data):
    token = data.draw(TOKENS, "token")
    password = data.draw(password_near(token), "password")
    rd.register_secret(token, owner=rd.OPERATOR)
    # The password as a tenant's (when a tenant may register it) or as the client does.
    rd.register_secret(password, owner=None if rd.unregistrable(password) else "team-a")
    registered = [s for s in (token, password) if len(s) >= rd.MIN_SECRET_LENGTH]
    text = data.draw(texts(*registered), "text")
    out = rd.redact(text)
    assert not survivors(out, *registered), out
    assert not pieces_left(out, token), out


B64 = base64.b64encode(JWT_LIKE.encode()).decode()


@settings(max_examples=200, deadline=None)
@given(
    st.sampled_from(["jruntok=ZXlK", "jruntok", "passwd", "jruntok=", B64[:12], "ZXlK" + B64[:20]]),
    NOISE,
    NOISE,
)
@example(password="jruntok=ZXlK", before="", after="")
def test_an_echoed_request_line_keeps_neither_secret(password, before, after):
    """The issue's reproduction and its neighbours: the password starts before the token's
    base64 (every ServiceAccount token's starts ZXlK) and runs into it, in the request line a
    server echoes (aiohttp: `b'GET ... HTTP/1.1'`), raw and as requests encodes it."""
    rd.register_secret(JWT_LIKE, owner=rd.OPERATOR)
    rd.register_secret(password)  # as the client registers any password it sends
    query = urlencode({"jruntok": B64, "jrunns": "team-a", "passwd": password, "name": "nb"})
    for line in (
        f"{before}400 Bad Request: b'GET /submitJob/Notebook/?{query} HTTP/1.1'{after}",
        f"{before}GET /submitJob/Notebook/?jruntok={B64}&passwd={password}{after}",
        f"{before}{password}{B64[len(password) - 8 :] if password.startswith('jruntok=') else B64}{after}",
    ):
        out = rd.redact(line)
        assert not survivors(out, JWT_LIKE, password), (line, out)
        # Not even a piece of the token: a shifted cut could show any 12 characters.
        assert not [B64[i : i + 12] for i in range(len(B64) - 11) if B64[i : i + 12] in out], out


def test_an_unregistered_value_is_still_scrubbed_after_a_password_equal_to_the_name():
    rd.register_secret("jruntok")
    out = rd.redact("GET /listJobs/?jruntok=dW5yZWdpc3RlcmVk&jrunns=a")
    assert "dW5yZWdpc3RlcmVk" not in out and out.endswith("&jrunns=a")
