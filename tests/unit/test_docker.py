"""The production shape in docker/: compose's services, checks, restart policies and profiles, and an image that
installs exactly the pinned set of docker/requirements.lock. (No Docker engine runs here: the files are parsed.)"""

from __future__ import annotations

import re
import tomllib
from pathlib import Path
from typing import Any

import pytest
import yaml
from packaging.requirements import Requirement
from packaging.utils import canonicalize_name

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def compose() -> dict[str, Any]:
    loaded: dict[str, Any] = yaml.safe_load((ROOT / "docker" / "compose.yml").read_text(encoding="utf-8"))
    return loaded["services"]


def probe_port(service: dict[str, Any]) -> int:
    test = " ".join(service["healthcheck"]["test"])
    found = re.search(r"http://127\.0\.0\.1:(\d+)/(readyz|_admin/noop)", test)
    assert found is not None, test
    return int(found.group(1))


def option(command: list[str], name: str) -> str:
    return command[command.index(name) + 1]


def test_services_of_the_production_shape(compose: dict[str, Any]) -> None:
    assert set(compose) == {"db", "migrate", "gateway", "worker-1", "worker-2", "sandbox"}
    assert compose["migrate"]["command"] == ["migrate"]
    assert compose["gateway"]["command"][0] == "serve"
    assert compose["gateway"]["environment"]["CREDIT_GATEWAY_DELIVERY__IN_SERVE"] == "false"
    for name in ("worker-1", "worker-2"):
        assert compose[name]["command"][0] == "worker"
    assert "postgresql+psycopg://" in compose["gateway"]["environment"]["CREDIT_GATEWAY_DATABASE_URL"]


def test_migrations_run_once_before_everything_that_uses_the_database(compose: dict[str, Any]) -> None:
    assert compose["migrate"]["restart"] == "no"
    assert compose["migrate"]["depends_on"] == {"db": {"condition": "service_healthy"}}
    for name in ("gateway", "worker-1", "worker-2"):
        assert compose[name]["depends_on"] == {"migrate": {"condition": "service_completed_successfully"}}


def test_each_long_running_service_has_a_readiness_check_on_its_own_port(compose: dict[str, Any]) -> None:
    assert "pg_isready" in " ".join(compose["db"]["healthcheck"]["test"])
    assert probe_port(compose["gateway"]) == int(option(compose["gateway"]["command"], "--port"))
    for name in ("worker-1", "worker-2"):
        command = compose[name]["command"]
        assert probe_port(compose[name]) == int(option(command, "--metrics-port"))
        assert option(command, "--metrics-host") == "0.0.0.0"
        assert "/readyz" in " ".join(compose[name]["healthcheck"]["test"])
    assert probe_port(compose["sandbox"]) == int(option(compose["sandbox"]["command"], "--port"))


def test_restart_policies_and_the_optional_sandbox(compose: dict[str, Any]) -> None:
    for name in ("db", "gateway", "worker-1", "worker-2", "sandbox"):
        assert compose[name]["restart"] == "unless-stopped", name
    assert compose["sandbox"]["profiles"] == ["sandbox"]
    assert all("profiles" not in compose[name] for name in compose if name != "sandbox")
    assert all("sandbox" not in compose[name].get("depends_on", {}) for name in compose)


def test_every_variable_is_a_real_setting(compose: dict[str, Any]) -> None:
    from gateway.settings import Settings

    for name in ("migrate", "gateway", "worker-1", "worker-2"):
        for variable in compose[name]["environment"]:
            field = variable.removeprefix("CREDIT_GATEWAY_").lower().split("__")[0]
            assert field in Settings.model_fields, variable


def test_the_image_healthcheck_is_not_tied_to_one_port() -> None:
    dockerfile = (ROOT / "docker" / "Dockerfile").read_text(encoding="utf-8")
    [check] = [line for line in dockerfile.splitlines() if line.startswith("HEALTHCHECK")]
    assert "127.0.0.1:8600" not in check and "CREDIT_GATEWAY_PORT" in check and "HEALTHCHECK_URL" in check


def test_the_image_installs_the_lock_file_and_nothing_resolved_again() -> None:
    dockerfile = (ROOT / "docker" / "Dockerfile").read_text(encoding="utf-8")
    assert "COPY docker/requirements.lock" in dockerfile
    assert "pip install --no-cache-dir --requirement /tmp/requirements.lock" in dockerfile
    assert "pip wheel --no-cache-dir --no-deps" in dockerfile
    assert "pip install --no-cache-dir --no-deps /wheels/*.whl" in dockerfile
    makefile = (ROOT / "Makefile").read_text(encoding="utf-8")
    assert "--output-file docker/requirements.lock pyproject.toml" in makefile


def test_the_lock_file_pins_every_runtime_dependency_within_its_range() -> None:
    pyproject = tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))
    lines = (ROOT / "docker" / "requirements.lock").read_text(encoding="utf-8").splitlines()
    pinned = {}
    for line in lines:
        if line and not line.startswith((" ", "#", "-")):
            name, _, version = line.partition("==")
            assert version, f"not pinned: {line}"
            pinned[canonicalize_name(name)] = version.split(";")[0].strip()
    assert pinned, "the lock file pins nothing"
    for spec in pyproject["project"]["dependencies"]:
        wanted = Requirement(spec)
        name = canonicalize_name(wanted.name)
        assert name in pinned, f"{wanted.name} is not in docker/requirements.lock: run `make lock`"
        assert wanted.specifier.contains(pinned[name], prereleases=True), (
            f"{wanted.name}=={pinned[name]} is outside {wanted.specifier}: run `make lock`"
        )
    for dev_only in ("pytest", "ruff", "mypy"):
        assert dev_only not in pinned, f"{dev_only} is a dev tool, not for the image"
