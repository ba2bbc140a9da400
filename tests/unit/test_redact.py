"""Secrets never leave in text: every encoding of a registered token or password, the
values of jruntok/passwd wherever they appear, and URL userinfo."""

from __future__ import annotations

import base64
import io
import json
import logging
from urllib.parse import quote, quote_plus, urlencode

import pytest
from hypothesis import example, given, settings
from hypothesis import strategies as st
from kopf import LogFormat
from kopf._core.actions.loggers import make_formatter  # what kopf.configure installs

from juliarun_operator.juliarun import log_scrubbing as ls
from juliarun_operator.juliarun import redact as rd
from juliarun_operator.juliarun.encoding import encode_params
from juliarun_operator.juliarun.errors import ApiError, HTTPError, InvalidResponse, ParameterError

# Chosen so its base64 has padding, '+' and '/' (and so differs from the URL-safe form).
TOKEN = "eyJhbGciOi>>???tok-3nX"
PASSWORD = "n0tebook pa$$/word?"


@pytest.fixture(autouse=True)
def registry():
    rd.forget_secrets()
    rd.register_secret(TOKEN)
    yield
    rd.forget_secrets()


def forms(value: str) -> dict[str, str]:
    raw = value.encode()
    std, safe = base64.b64encode(raw).decode(), base64.urlsafe_b64encode(raw).decode()
    out = {
        "raw": value,
        "base64": std,
        "base64 unpadded": std.rstrip("="),
        "url-safe base64": safe,
        "url-safe base64 unpadded": safe.rstrip("="),
    }
    for name, text in list(out.items()):
        out[f"{name}, quote_plus"] = quote_plus(text)
        out[f"{name}, quote"] = quote(text, safe="")
        out[f"{name}, lower-case escapes"] = quote(text, safe="").replace("%3D", "%3d").replace("%2B", "%2b")
    return out


def test_the_token_chosen_exercises_every_encoding():
    f = forms(TOKEN)
    assert f["base64"].endswith("=") and "+" in f["base64"] and "/" in f["base64"]
    assert f["base64"] != f["url-safe base64"]
    assert "%3D" in f["base64, quote_plus"] and "%3d" in f["base64, lower-case escapes"]


@pytest.mark.parametrize("name,form", forms(TOKEN).items(), ids=forms(TOKEN).keys())
def test_every_form_of_a_registered_token_is_scrubbed(name, form):
    text = f"upstream said: bad token {form} (from 10.0.0.1)"
    out = rd.redact(text)
    assert form not in out
    assert (
        "REDACTED" in out and out.startswith("upstream said: bad token ") and out.endswith("(from 10.0.0.1)")
    )


@pytest.mark.parametrize("name,form", forms(PASSWORD).items(), ids=forms(PASSWORD).keys())
def test_a_registered_password_is_scrubbed_in_every_form(name, form):
    rd.register_secret(PASSWORD)
    assert form not in rd.redact(f"<p>{form}</p>")


def test_the_query_as_requests_sends_it_keeps_no_token():
    query = urlencode({"jruntok": base64.b64encode(TOKEN.encode()).decode(), "jrunns": "ns", "name": "j"})
    line = f"GET /submitJob/JuliaBatch/?{query} HTTP/1.1"
    assert "%3D" in query
    out = rd.redact(line)
    assert out == "GET /submitJob/JuliaBatch/?jruntok=REDACTED&jrunns=ns&name=j HTTP/1.1"


def test_secret_query_values_are_scrubbed_without_registration():
    rd.forget_secrets()
    text = "b'GET /submitJob/Notebook/?jruntok=dW5rbm93bg%3D%3D&jrunns=a&passwd=hunter22&name=nb HTTP/1.1'"
    out = rd.redact(text)
    assert "dW5rbm93bg" not in out and "hunter22" not in out
    assert "jrunns=a" in out and "name=nb" in out
    # A whole URL URL-encoded into another one (a login redirect's ?next=...).
    nested = "Location: /login?next=%2FlistJobs%2F%3Fjruntok%3DdW5rbm93bg%253D%26jrunns%3Da"
    out = rd.redact(nested)
    assert "dW5rbm93bg" not in out and "jrunns%3Da" in out


def test_a_value_cut_short_by_the_server_is_still_scrubbed():
    rd.forget_secrets()
    # aiohttp echoes the first 100 bytes of an over-long request line.
    echo = (
        "Got more than 8190 bytes when reading: "
        "b'GET /submitJob/JuliaBatch/?jruntok=ZXlKaGJHY2lPaUpTVXpJMU5pSXNJbXRwWkNJNklq...'."
    )
    assert "ZXlKaGJH" not in rd.redact(echo)


@pytest.mark.parametrize(
    "url,shown",
    [
        ("https://alice:s3cret@jr.example/x", "https://REDACTED@jr.example/x"),
        ("http://tok@10.0.0.1:80", "http://REDACTED@10.0.0.1:80"),
        ("HTTPS://u:p@h", "HTTPS://REDACTED@h"),
    ],
)
def test_url_userinfo_is_scrubbed(url, shown):
    assert rd.redact(f"cannot reach {url}: refused") == f"cannot reach {shown}: refused"


def test_an_at_sign_after_the_host_is_not_userinfo():
    text = "see http://jr.example/jobs?owner=a@b.example and mailto a@b"
    assert rd.redact(text) == text


def test_short_values_are_not_registered():
    rd.register_secret("ab")
    assert rd.redact("about a cab") == "about a cab"


def test_the_newest_secrets_are_kept():
    rd.forget_secrets()
    for i in range(rd.MAX_SECRETS + 1):
        rd.register_secret(f"secret-number-{i:04d}")
    assert "secret-number-0000" in rd.redact("secret-number-0000")  # the oldest fell out
    assert rd.redact(f"secret-number-{rd.MAX_SECRETS:04d}") == "REDACTED"


def pieces(form: str, size: int = 12) -> list[str]:
    """Every `size`-character piece of `form`: what a shifted cut could show of it."""
    return [form[i : i + size] for i in range(len(form) - size + 1)]


# A ServiceAccount token's shape: every one starts "eyJ", so its base64 starts "ZXlK".
JWT = "eyJhbGciOiJSUzI1NiIsImtpZCI6IjEyMyJ9.eyJpc3MiOiJrdWJlcm5ldGVzIn0.c2lnbmF0dXJlLXNpZ25hdHVyZQ"


def test_a_password_running_into_the_token_hides_neither():
    """The reproduction from the attack review: a notebook password `jruntok=ZXlK` (the
    start of every ServiceAccount token's base64) and a server that echoes the request line.
    Scanning left to right, the password's form was found first and swallowed the token's
    start, so neither the token's forms nor the jruntok= pattern matched any more."""
    rd.forget_secrets()
    b64 = base64.b64encode(JWT.encode()).decode()
    assert b64.startswith("ZXlK")
    rd.register_secret(JWT, owner=rd.OPERATOR)
    rd.register_secret("jruntok=ZXlK")  # as the client registers a password it sends
    query = urlencode({"jruntok": b64, "jrunns": "team-a", "passwd": "jruntok=ZXlK", "name": "nb"})
    for line in (
        f"400 Bad Request: b'GET /submitJob/Notebook/?{query} HTTP/1.1'",
        f"echo: GET /listJobs/?jruntok={b64}&jrunns=team-a",  # the password's raw form, unencoded
        f"jruntok={b64[:4]}{quote_plus(b64[4:])}",
    ):
        for shown in (rd.redact(line), rd.cut(line), rd.cut(line[3:]), rd.cut(line, 120)):
            for form in forms(JWT).values():
                assert not [p for p in pieces(form) if p in shown], (form, shown)
    # The password's span and the token's merge: one marker, the parameter's name in it.
    assert rd.redact(f"x?{query}") == "x?REDACTED&jrunns=team-a&passwd=REDACTED&name=nb"


def test_a_password_equal_to_a_parameter_name_does_not_disable_its_pattern():
    rd.forget_secrets()
    rd.register_secret("jruntok")
    rd.register_secret("passwd")
    text = "GET /listJobs/?jruntok=bm90LXJlZ2lzdGVyZWQ%3D&passwd=unregistered-pw&x=1"
    out = rd.redact(text)
    assert "bm90LXJlZ2lzdGVyZWQ" not in out and "unregistered-pw" not in out
    assert out == "GET /listJobs/?REDACTED=REDACTED&REDACTED=REDACTED&x=1"


def test_overlapping_and_nested_secrets_are_hidden_whole():
    rd.forget_secrets()
    rd.register_secret("abcd-1234-efgh")
    rd.register_secret("1234-efgh-5678-ijkl")  # starts inside the first, ends after it
    rd.register_secret("efgh")  # inside both
    assert rd.redact("<abcd-1234-efgh-5678-ijkl>") == "<REDACTED>"
    assert rd.redact("efgh and 1234-efgh-5678-ijkl") == "REDACTED and REDACTED"


def test_nested_url_encodings_of_the_parameters_are_scrubbed():
    rd.forget_secrets()
    text = "next=%252FlistJobs%253Fjruntok%253DdW5rbm93bg%25253D%2526jrunns%253Da"
    out = rd.redact(text)
    assert "dW5rbm93bg" not in out and out.endswith("jruntok%253DREDACTED%2526jrunns%253Da")


# --- owners ------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "value,reason",
    [
        ("", "is empty"),
        ("jruntok", "shorter than 8"),
        ("pa55wd", "shorter than 8"),
        ("jruntok=ZXlK", "URL syntax"),
        ("a&jrunns=x1", "URL syntax"),
        ("x1/y2/z3?q", "URL syntax"),
        ("100%-sure-1", "URL syntax"),
        ("password", "only letters"),
        ("Notebook Password", "only letters"),
        ("change-me", "only letters"),
        ("kube-system", "only letters"),
        ("12345678", "no letter"),
        ("2026-12-03 10:00:00", "no letter"),
        ("10.0.0.1:8080", "no letter"),
        ("line1\nline2x", "control character"),
    ],
)
def test_a_tenant_secret_that_would_match_ordinary_text_is_refused(value, reason):
    rd.forget_secrets()
    why = rd.unregistrable(value)
    assert reason in why and (not value or value not in why)
    text = f"the job {value} in namespace team-a"
    before = rd.redact(text)
    assert rd.register_secret(value, owner="team-a") is False
    assert rd.redact(text) == before  # not a pattern: nobody's messages lose it


@pytest.mark.parametrize("value", ["pa55word", "n0tebook pa$$word", "S3cret!x", "Zm9vYmFy9", "pässwört1"])
def test_a_tenant_secret_unlike_ordinary_text_is_registered(value):
    assert rd.unregistrable(value) == ""
    assert rd.register_secret(value, owner="team-a") is True
    assert rd.redact(f"<{value}>") == "<REDACTED>"


def test_one_tenant_cannot_push_out_another_owners_secrets():
    rd.forget_secrets()
    rd.register_secret(JWT, owner=rd.OPERATOR)
    rd.register_secret("team-a-pa55", owner="team-a")
    rd.register_secret("unowned-s3cret")
    for i in range(rd.MAX_SECRETS_PER_OWNER + 10):
        assert rd.register_secret(f"flood-{i:05d}", owner="team-b")
    for i in range(rd.MAX_SECRETS + 10):
        rd.register_secret(f"unowned-flood-{i:05d}")
    assert rd.redact(JWT) == rd.redact("team-a-pa55") == "REDACTED"
    # Each compartment keeps its own newest: team-b's oldest went, not anyone else's.
    assert rd.redact("flood-00000") == "flood-00000"
    assert rd.redact(f"flood-{rd.MAX_SECRETS_PER_OWNER + 9:05d}") == "REDACTED"
    assert rd.redact("unowned-s3cret") == "unowned-s3cret"


def test_the_operators_own_secrets_leave_only_for_its_own_newer_ones():
    rd.forget_secrets()
    rd.register_secret("operator-token-0", owner=rd.OPERATOR)
    for i in range(1, rd.MAX_OPERATOR_SECRETS):
        rd.register_secret(f"operator-token-{i}", owner=rd.OPERATOR)
    rd.register_secret("operator-token-0")  # in use again (the client registers it per call)
    rd.register_secret("operator-token-new", owner=rd.OPERATOR)
    assert rd.redact("operator-token-0") == "REDACTED"  # used recently: kept
    assert rd.redact("operator-token-1") == "operator-token-1"  # the oldest unused: gone


def test_a_value_shared_by_two_owners_stays_while_one_keeps_it():
    rd.forget_secrets()
    rd.register_secret("shared-pa55", owner="team-a")
    rd.register_secret("shared-pa55", owner="team-b")
    rd.forget_owner("team-a")
    assert rd.redact("shared-pa55") == "REDACTED"
    rd.forget_owner("team-b")
    assert rd.redact("shared-pa55") == "shared-pa55"


def test_cut_scrubs_before_cutting():
    b64 = base64.b64encode(TOKEN.encode()).decode()
    body = "x" * 190 + b64 + " trailing"
    shown = rd.cut(body, 200)
    # Cutting first would have left the token's first 10 characters, which no pattern knows.
    assert b64[:10] not in shown and shown.startswith("x" * 190 + "REDACTED")


@settings(max_examples=200, deadline=None)
# A secret inside the marker itself ("REDA") would be found in every scrubbed output.
@given(
    st.text(min_size=rd.MIN_SECRET_LENGTH, max_size=60).filter(
        lambda s: s.strip() == s and s and s not in "REDACTED"
    ),
    st.text(max_size=30),
    st.text(max_size=30),
)
@example(secret="i\x8000", before="%", after="")  # base64 "acKAMDA=" after a '%': "%ac" is no escape
def test_any_registered_value_is_scrubbed_in_any_form(secret, before, after):
    rd.register_secret(secret)
    for name, form in forms(secret).items():
        out = rd.redact(before + form + after)
        assert form not in out, name


# --- errors scrub where they are built ---------------------------------------------------------


def echo_body() -> str:
    query = urlencode({"jruntok": base64.b64encode(TOKEN.encode()).decode(), "jrunns": "ns"})
    return f"400 Bad Request: GET /listJobs/?{query} HTTP/1.1\ntoken was {TOKEN}"


def assert_clean(text: str) -> None:
    for name, form in forms(TOKEN).items():
        assert form not in text, f"{name} in {text!r}"


def test_http_error_message_and_body_are_scrubbed_and_cut():
    exc = HTTPError("listJobs", 400, echo_body() + "z" * 10_000)
    assert_clean(str(exc))
    assert_clean(exc.body)
    assert len(str(exc)) < 300 and len(exc.body) <= 4096 + 3
    assert "HTTP 400" in str(exc) and "jruntok=REDACTED" in str(exc)


def test_api_error_and_invalid_response_are_scrubbed():
    exc = ApiError("getJobStatus", 2, f"token {TOKEN} not accepted")
    assert_clean(str(exc))
    assert_clean(exc.reason)
    assert exc.code == 2 and "not accepted" in exc.reason
    bad = InvalidResponse("listJobs", "not JSON", echo_body())
    assert_clean(bad.body)


def test_a_refused_password_is_never_printed():
    with pytest.raises(ParameterError) as err:
        encode_params("Notebook", {"run_volume": "home", "passwd": "pw\x00" + PASSWORD})
    assert PASSWORD not in str(err.value) and "secret" in str(err.value)
    with pytest.raises(ParameterError) as err:
        encode_params("Notebook", {"run_volume": "home", "passwd": 1234567})
    assert "1234567" not in str(err.value) and err.value.param == "passwd"


# --- logging ----------------------------------------------------------------------------------


def capture(logger: logging.Logger, *filters: logging.Filter) -> io.StringIO:
    out = io.StringIO()
    handler = logging.StreamHandler(out)
    handler.setFormatter(logging.Formatter("%(levelname)s %(message)s"))
    for f in filters:
        handler.addFilter(f)
    logger.addHandler(handler)
    logger.propagate = False
    logger.setLevel(logging.DEBUG)
    return out


def test_secret_filter_scrubs_message_args_exception_and_stack():
    logger = logging.getLogger("test_redact.filter")
    out = capture(logger, ls.SecretFilter())
    b64 = base64.b64encode(TOKEN.encode()).decode()
    logger.info("GET %s", f"/listJobs/?jruntok={quote_plus(b64)}")
    logger.warning("token %s refused", TOKEN)
    try:
        raise RuntimeError(f"upstream echoed {b64}")
    except RuntimeError:
        logger.exception("call failed")
    logger.error("with stack", stack_info=True, extra={"unused": TOKEN})
    text = out.getvalue()
    assert_clean(text)
    assert "jruntok=REDACTED" in text and "token REDACTED refused" in text
    assert "RuntimeError: upstream echoed REDACTED" in text


def test_extras_are_scrubbed_for_json_formatters():
    """A JSON formatter prints a record's extra attributes; they are scrubbed too."""
    logger = logging.getLogger("test_redact.extra")
    out = io.StringIO()
    handler = logging.StreamHandler(out)
    handler.setFormatter(logging.Formatter("%(message)s %(url)s"))
    handler.addFilter(ls.SecretFilter())
    logger.addHandler(handler)
    logger.propagate = False
    logger.warning("calling", extra={"url": f"https://h/listJobs/?jruntok={TOKEN}"})
    assert out.getvalue().strip() == "calling https://h/listJobs/?jruntok=REDACTED"


def test_installed_filter_reaches_handlers_added_later():
    """install_secret_filter works through the record factory: a handler that did not exist
    when it was installed (kopf adds its Event poster late) still gets scrubbed records."""
    ls.install_secret_filter()
    ls.install_secret_filter()  # idempotent
    logger = logging.getLogger("test_redact.late")
    out = capture(logger)  # no filter of its own
    logger.info("bearer %s and %r", TOKEN, {"url": f"https://u:{TOKEN}@h/"})
    text = out.getvalue()
    assert_clean(text)
    assert "bearer REDACTED" in text


def test_a_broken_format_string_still_logs():
    logger = logging.getLogger("test_redact.broken")
    out = capture(logger, ls.SecretFilter())
    logging.raiseExceptions = False
    try:
        logger.info("%d", "not a number")
    finally:
        logging.raiseExceptions = True
    assert TOKEN not in out.getvalue()


def raise_with_token() -> None:
    """An exception whose message, cause and traceback text carry the token's forms."""
    b64 = base64.b64encode(TOKEN.encode()).decode()
    try:
        raise ValueError(f"echoed b'GET /listJobs/?jruntok={quote_plus(b64)}&jrunns=ns'")
    except ValueError as cause:
        raise RuntimeError(f"token {TOKEN} refused; base64 {b64.rstrip('=')}") from cause


@pytest.mark.parametrize("log_format", ["json", "text"])
def test_tracebacks_are_scrubbed_in_kopfs_json_and_text_formats(log_format):
    """kopf's --log-format json formatter (python-json-logger) formats `exc_info` afresh
    whenever a record has one, ignoring the scrubbed `exc_text`: the filter clears it."""
    ls.install_secret_filter()  # as the client module does when it is imported
    logger = logging.getLogger(f"test_redact.traceback.{log_format}")
    out = io.StringIO()
    handler = logging.StreamHandler(out)
    handler.setFormatter(
        make_formatter(log_format=LogFormat.JSON if log_format == "json" else LogFormat.FULL)
    )
    logger.addHandler(handler)
    logger.propagate = False
    try:
        raise_with_token()
    except RuntimeError:
        logger.exception("call failed for %s", TOKEN)
        logger.error("again", exc_info=True, stack_info=True)
    text = out.getvalue()
    assert_clean(text)
    if log_format == "json":
        lines = [json.loads(line) for line in text.splitlines()]
        assert len(lines) == 2 and all("exc_info" in line for line in lines)
        assert "stack_info" in lines[1]
        shown = "".join(line["exc_info"] for line in lines)
        assert_clean(shown)
    else:
        shown = text
    # The traceback itself is still there, scrubbed.
    assert "Traceback (most recent call last)" in shown and "raise_with_token" in shown
    assert "RuntimeError: token REDACTED refused; base64 REDACTED" in shown
    assert "jruntok=REDACTED&jrunns=ns" in shown


def test_install_log_scrubbing_wraps_the_handlers_formatters():
    """The last net: what a formatter prints from a record's non-string extras (a dict here,
    which the filter does not walk) is scrubbed in its output."""
    logger = logging.getLogger("test_redact.wrapped")
    out = io.StringIO()
    handler = logging.StreamHandler(out)
    handler.setFormatter(make_formatter(log_format=LogFormat.JSON))
    logger.addHandler(handler)
    logger.propagate = False
    ls.install_log_scrubbing(logger)
    ls.install_log_scrubbing(logger)  # idempotent: wrapped once
    assert isinstance(handler.formatter, ls.ScrubbingFormatter)
    assert not isinstance(handler.formatter.inner, ls.ScrubbingFormatter)
    logger.warning("calling", extra={"params": {"jruntok": TOKEN, "jrunns": "ns"}})
    line = json.loads(out.getvalue())
    assert line["params"] == {"jruntok": "REDACTED", "jrunns": "ns"} and line["message"] == "calling"
