"""Configuration from the environment, as CONTRACT.md names it."""

from __future__ import annotations

import pytest
from pydantic import ValidationError

from gateway.settings import Settings
from schemas.enums import Kind


def test_defaults_route_every_record_kind_to_the_platforms_and_articles_to_portal_and_municipal() -> None:
    routes = Settings().targets.routes()
    assert routes[Kind.LICENCE] == ("national", "provincial", "municipal", "portal")
    assert routes[Kind.PENALTY] == ("national", "provincial", "municipal", "portal")
    assert routes[Kind.COMMITMENT] == ("national", "provincial", "municipal")
    assert routes[Kind.LIST_CHANGE] == ("national", "provincial", "municipal")
    assert Settings().targets.national.base_url == "http://127.0.0.1:8700/national"
    assert routes[Kind.CASE] == routes[Kind.NEWS] == ("municipal", "portal")  # articles: the two it names


def test_articles_cannot_be_routed_to_national_or_provincial(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("CREDIT_GATEWAY_TARGETS__PROVINCIAL__KINDS", "licences,cases")
    with pytest.raises(ValidationError, match="cases go to the portal and municipal only"):
        Settings()


def test_articles_have_no_deadline_rule_by_default() -> None:
    rules = Settings().deadlines.rules
    assert all(Kind.CASE not in r.kinds and Kind.NEWS not in r.kinds for r in rules)
    assert {r.target for r in rules if Kind.LICENCE in r.kinds} == {"national", "provincial", "municipal", "portal"}


def test_nested_environment_variables(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("CREDIT_GATEWAY_DATABASE_URL", "postgresql+psycopg://u@db:5432/cg")
    monkeypatch.setenv("CREDIT_GATEWAY_TARGETS__NATIONAL__BASE_URL", "https://xyzg.example/api")
    monkeypatch.setenv("CREDIT_GATEWAY_TARGETS__MUNICIPAL__ENABLED", "false")
    monkeypatch.setenv("CREDIT_GATEWAY_TARGETS__PORTAL__KINDS", "licences")
    monkeypatch.setenv("CREDIT_GATEWAY_TARGETS__PROVINCIAL__KINDS", '["penalties", "licences"]')
    monkeypatch.setenv("CREDIT_GATEWAY_TARGETS__NATIONAL__APP_SECRET", "s3cret")
    settings = Settings()
    assert settings.database_url == "postgresql+psycopg://u@db:5432/cg"
    assert settings.targets.national.base_url == "https://xyzg.example/api"
    assert settings.targets.national.app_secret.get_secret_value() == "s3cret"
    assert "s3cret" not in repr(settings)
    routes = settings.targets.routes()
    assert routes[Kind.LICENCE] == ("national", "provincial", "portal")
    assert routes[Kind.PENALTY] == ("national", "provincial")
    assert routes[Kind.COMMITMENT] == ("national",)


def test_unknown_kind_in_configuration_is_refused(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("CREDIT_GATEWAY_TARGETS__PORTAL__KINDS", "licences,notices")
    with pytest.raises(ValidationError, match="notices"):
        Settings()


def test_production_refuses_demo_credentials(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("CREDIT_GATEWAY_ENVIRONMENT", "production")
    with pytest.raises(ValidationError, match=r"targets\.national\.app_secret"):
        Settings()
    for name, value in [("NATIONAL__APP_SECRET", "a"), ("PROVINCIAL__SM3_KEY", "b"), ("MUNICIPAL__CLIENT_SECRET", "c")]:
        monkeypatch.setenv(f"CREDIT_GATEWAY_TARGETS__{name}", value)
    monkeypatch.setenv("CREDIT_GATEWAY_TARGETS__PORTAL__ENABLED", "false")  # a disabled target may keep its demo
    assert Settings().environment == "production"


def test_exchange_deadline_and_shutdown_grace(monkeypatch: pytest.MonkeyPatch) -> None:
    from gateway import shutdown

    monkeypatch.setenv("CREDIT_GATEWAY_TARGETS__NATIONAL__EXCHANGE_DEADLINE_SECONDS", "7.5")
    monkeypatch.setenv("CREDIT_GATEWAY_TARGETS__PORTAL__TIMEOUT_SECONDS", "4")
    monkeypatch.setenv("CREDIT_GATEWAY_SHUTDOWN_GRACE_SECONDS", "20")
    settings = Settings()
    assert settings.targets.national.exchange_deadline() == 7.5
    assert settings.targets.portal.exchange_deadline() == 12  # three times the per-operation timeout
    assert settings.targets.municipal.exchange_deadline() == 30
    assert (shutdown.http_seconds(20), shutdown.exchange_seconds(20, serves_http=True)) == (5, 5)
    assert shutdown.exchange_seconds(20, serves_http=False) == 10
    monkeypatch.setenv("CREDIT_GATEWAY_SHUTDOWN_GRACE_SECONDS", "0.5")
    with pytest.raises(ValidationError, match="shutdown_grace_seconds"):
        Settings()
