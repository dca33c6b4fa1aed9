"""The environment readers in livecharts/env.py (good values read, malformed ones fail at start)
and the Content-Security-Policy every answer carries."""

from __future__ import annotations

import pytest
from django.core.exceptions import ImproperlyConfigured
from django.http import HttpResponse

from livecharts.csp import ContentSecurityPolicyMiddleware
from livecharts.env import envbool, envint, envlist, envstr

NAME = "LIVECHARTS_TEST_SETTING"


@pytest.fixture(autouse=True)
def unset(monkeypatch):
    monkeypatch.delenv(NAME, raising=False)


@pytest.mark.parametrize("raw", ["1", "true", "TRUE", " yes ", "on"])
def test_envbool_reads_true_words(monkeypatch, raw):
    monkeypatch.setenv(NAME, raw)
    assert envbool(NAME, False) is True


@pytest.mark.parametrize("raw", ["0", "false", "No", "off", ""])
def test_envbool_reads_false_words(monkeypatch, raw):
    monkeypatch.setenv(NAME, raw)
    assert envbool(NAME, True) is False


def test_envbool_uses_the_default_when_unset():
    assert envbool(NAME, True) is True
    assert envbool(NAME, False) is False


@pytest.mark.parametrize("raw", ["maybe", "2", "truee", "y"])
def test_envbool_refuses_a_malformed_value_naming_the_variable(monkeypatch, raw):
    monkeypatch.setenv(NAME, raw)
    with pytest.raises(ImproperlyConfigured, match=f"{NAME}=.*not a boolean"):
        envbool(NAME, True)


def test_envint_reads_an_integer_and_defaults_when_unset_or_blank(monkeypatch):
    assert envint(NAME, 50) == 50
    monkeypatch.setenv(NAME, "  ")
    assert envint(NAME, 50) == 50
    monkeypatch.setenv(NAME, "20")
    assert envint(NAME, 50, minimum=5) == 20


@pytest.mark.parametrize("raw", ["fifty", "1.5", "10ms"])
def test_envint_refuses_a_malformed_value(monkeypatch, raw):
    monkeypatch.setenv(NAME, raw)
    with pytest.raises(ImproperlyConfigured, match=f"{NAME}=.*not an integer"):
        envint(NAME, 50)


def test_envint_refuses_a_value_below_its_minimum(monkeypatch):
    monkeypatch.setenv(NAME, "2")
    with pytest.raises(ImproperlyConfigured, match="must be at least 5"):
        envint(NAME, 50, minimum=5)


def test_envlist_splits_on_commas_and_drops_blanks(monkeypatch):
    monkeypatch.setenv(NAME, " a.example.com, ,b.example.com ,")
    assert envlist(NAME) == ["a.example.com", "b.example.com"]


def test_envlist_and_envstr_use_their_defaults_when_unset():
    assert envlist(NAME, "127.0.0.1,localhost") == ["127.0.0.1", "localhost"]
    assert envlist(NAME) == []
    assert envstr(NAME, "fallback") == "fallback"


# The Content-Security-Policy middleware (livecharts/csp.py); Chromium's view of it is in
# tests/browser/test_csp.py.


def test_every_page_gets_a_policy_with_no_inline_or_eval_script(client):
    policy = client.get("/accounts/login/").headers["Content-Security-Policy"]
    directives = dict(part.strip().split(" ", 1) for part in policy.split(";"))
    assert directives["script-src"] == "'self'"
    assert directives["default-src"] == "'self'"
    assert directives["object-src"] == "'none'"
    assert directives["frame-ancestors"] == "'none'"
    assert directives["connect-src"] == "'self' ws://testserver wss://testserver"
    assert "unsafe-eval" not in policy


@pytest.mark.django_db
def test_admin_and_json_answers_get_the_policy_too(client):
    assert "script-src 'self'" in client.get("/admin/login/").headers["Content-Security-Policy"]
    assert "script-src 'self'" in client.get("/healthz").headers["Content-Security-Policy"]


def test_a_response_with_its_own_policy_keeps_it(rf):
    response = HttpResponse()
    response["Content-Security-Policy"] = "default-src 'none'"
    middleware = ContentSecurityPolicyMiddleware(lambda request: response)
    assert middleware(rf.get("/"))["Content-Security-Policy"] == "default-src 'none'"


def test_an_unknown_host_still_gets_a_policy_without_socket_sources(rf):
    middleware = ContentSecurityPolicyMiddleware(lambda request: HttpResponse())
    policy = middleware(rf.get("/", HTTP_HOST="evil.example"))["Content-Security-Policy"]
    assert policy.endswith("connect-src 'self'")
    assert "evil.example" not in policy
