"""Tenant-given URLs and Secrets: what the operator refuses before any connection."""

from __future__ import annotations

import pytest

from juliarun_operator import tenancy as tn

ALLOWED = ("juliarun.example.com", "*.jr.internal", "10.0.0.5:8443", "[fd00::1]")


@pytest.mark.parametrize(
    "url",
    [
        "https://juliarun.example.com",
        "https://JULIARUN.example.com/base/",
        "https://juliarun.example.com.:443/",
        "https://team-a.jr.internal/api",
        "https://team-a.jr.internal:443/api",
        "https://10.0.0.5:8443",
        "https://[fd00::1]:443/",
        "https://[fd00:0::1]/",
    ],
)
def test_allowed_urls_pass_unchanged(url):
    assert tn.check_tenant_url(url, ALLOWED) == url


@pytest.mark.parametrize(
    "url,named",
    [
        ("https://user:pw@juliarun.example.com", "userinfo"),
        ("https://token@juliarun.example.com/", "userinfo"),
        ("https://juliarun.example.com/?x=", "query"),
        ("https://juliarun.example.com/base?", "query"),
        ("https://juliarun.example.com/#frag", "fragment"),
        ("https://juliarun.example.com#", "fragment"),
        ("ftp://juliarun.example.com", "scheme"),
        ("file:///var/run/secrets/kubernetes.io/serviceaccount/token", "scheme"),
        ("gopher://juliarun.example.com:70/", "scheme"),
        ("juliarun.example.com", "scheme"),
        ("https://", "no host"),
        ("https://kubernetes.default.svc", "allow-list"),
        ("https://169.254.169.254/latest/meta-data", "allow-list"),
        ("https://jr.internal", "allow-list"),  # the wildcard is for subdomains only
        ("https://evil-jr.internal", "allow-list"),
        ("https://juliarun.example.com.evil.io", "allow-list"),
        ("https://10.0.0.5", "allow-list"),  # listed with port 8443 only
        ("https://10.0.0.5:8444", "allow-list"),
        # An entry without a port allows the scheme's default port only.
        ("https://team-a.jr.internal:9000/api", "allow-list"),
        ("https://juliarun.example.com:8443", "allow-list"),
        ("https://[fd00::1]:6443", "allow-list"),
        ("http://juliarun.example.com", "plain http"),
        ("https://juliarun.example.com\\@evil.io", "backslash"),
        ("https://juliarun.example.com /x", "whitespace"),
        ("https://juliarun.example.com\n", "control"),
        ("https://[fd00::1", "not a URL"),
        ("", "expected a URL"),
    ],
)
def test_refused_urls_say_what_is_wrong(url, named):
    with pytest.raises(tn.TenantURLError) as err:
        tn.check_tenant_url(url, ALLOWED, key="credentialsRef url")
    message = str(err.value)
    assert message.startswith("credentialsRef url: ") and named in message, message
    assert "pw@" not in message


def test_non_strings_are_refused():
    with pytest.raises(tn.TenantURLError):
        tn.check_tenant_url(None, ALLOWED)
    with pytest.raises(tn.TenantURLError):
        tn.check_tenant_url(b"https://juliarun.example.com", ALLOWED)


def test_an_empty_allow_list_allows_nothing():
    with pytest.raises(tn.TenantURLError, match=tn.ALLOWED_HOSTS_ENV):
        tn.check_tenant_url("https://juliarun.example.com", ())


def test_star_allows_any_host_but_not_the_rest():
    assert tn.check_tenant_url("https://anything.example", ["*"])
    with pytest.raises(tn.TenantURLError, match="userinfo"):
        tn.check_tenant_url("https://a:b@anything.example", ["*"])


def test_plain_http_needs_the_administrators_opt_in_except_to_loopback():
    assert tn.check_tenant_url("http://127.0.0.1:8080", ["127.0.0.1:8080"])
    assert tn.check_tenant_url("http://[::1]/", ["[::1]"])
    assert tn.check_tenant_url("http://juliarun.example.com", ALLOWED, allow_insecure_http=True)


@pytest.mark.parametrize(
    ("url", "allowed"),
    [
        ("http://127.0.0.1:8080", ["127.0.0.1"]),  # port 80 only
        ("http://127.0.0.1:9180/metrics", ["*"]),  # any host, but on its default port
        ("https://jr.internal:8443", ["*.internal", "jr.internal"]),
    ],
)
def test_an_entry_without_a_port_allows_only_the_schemes_default_port(url, allowed):
    with pytest.raises(tn.TenantURLError, match="allow-list"):
        tn.check_tenant_url(url, allowed)


@pytest.mark.parametrize(
    ("url", "allowed", "exact"),
    [
        ("http://localhost", ["*"], "localhost"),
        ("http://evil.localhost", ["*.localhost"], "evil.localhost"),
        ("http://a.localhost:8080", ["*.localhost:8080"], "a.localhost:8080"),
        ("http://localhost:8080", ["*:8080"], "localhost:8080"),
    ],
)
def test_a_localhost_name_is_no_loopback_for_plain_http_unless_listed_as_it_is(url, allowed, exact):
    """A name resolves where the resolver says (a search domain, /etc/hosts, a DNS answer):
    only an address is loopback by itself; a localhost name is taken as one only where
    the administrator listed exactly that name."""
    with pytest.raises(tn.TenantURLError, match="plain http"):
        tn.check_tenant_url(url, allowed)
    assert tn.check_tenant_url(url, allowed, allow_insecure_http=True) == url
    assert tn.check_tenant_url(url, [exact]) == url


def test_a_refusal_does_not_tell_the_tenant_what_the_allow_list_holds():
    secret = ("jr-prod.corp.example:8443", "*.hidden-team.example", "10.9.8.7")
    with pytest.raises(tn.TenantURLError) as err:
        tn.check_tenant_url("https://juliarun.example.com", secret, key="credentialsRef url")
    message = str(err.value)
    assert not any(part in message for e in secret for part in e.replace("*.", "").split(":")), message
    assert "juliarun.example.com:443 is not on the administrator's allow-list" in message
    assert tn.ALLOWED_HOSTS_ENV in message and "tenancy.allowedHosts" in message


def test_allow_list_from_the_environment():
    env = {
        tn.ALLOWED_HOSTS_ENV: " JuliaRun.example.com, *.jr.internal:443 ,[::1]:80,",
        tn.ALLOW_INSECURE_HTTP_ENV: "true",
    }
    assert tn.allowed_hosts_from_env(env) == ("juliarun.example.com", "*.jr.internal:443", "[::1]:80")
    assert tn.insecure_http_allowed(env) and not tn.insecure_http_allowed({})
    assert tn.allowed_hosts_from_env({}) == ()
    for bad in ("https://x.example", "x.example/path", "*.*.example", "a b", "x.example:port", "user@x"):
        with pytest.raises(ValueError, match=tn.ALLOWED_HOSTS_ENV):
            tn.parse_allowed_hosts(bad)


def test_secret_marking():
    assert tn.secret_is_marked({tn.SECRET_LABEL: "true"})
    assert not tn.secret_is_marked({tn.SECRET_LABEL: "True"}) and not tn.secret_is_marked(None)
    message = tn.unmarked_secret_message("team-a", "creds")
    assert "kubectl label secret creds -n team-a juliarun.dev/credentials=true" in message
