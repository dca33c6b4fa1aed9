"""The environment readers in livecharts/env.py: good values read, malformed ones fail at start."""

from __future__ import annotations

import pytest
from django.core.exceptions import ImproperlyConfigured

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
