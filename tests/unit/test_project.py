"""How a command finds the project's database and the running demo's sandbox from any folder (gateway/project.py)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

from gateway import project


def _pyproject(folder: Path, name: str) -> None:
    (folder / "pyproject.toml").write_text(f'[project]\nname = "{name}"\n', encoding="utf-8")


def test_the_project_folder_is_the_nearest_with_the_database_or_our_pyproject(tmp_path: Path) -> None:
    _pyproject(tmp_path, "credit-gateway")
    deep = tmp_path / "docs" / "notes"
    deep.mkdir(parents=True)
    assert project.root(deep) == tmp_path
    _pyproject(tmp_path / "docs", "some-other-project")  # another project's pyproject.toml is not ours
    assert project.root(deep) == tmp_path
    (tmp_path / "docs" / "credit-gateway.db").touch()  # a database nearer than the pyproject.toml wins
    assert project.root(deep) == tmp_path / "docs"
    assert project.default_database_url(tmp_path) == f"sqlite:///{tmp_path}/credit-gateway.db"


def test_outside_any_project_the_folder_is_the_working_one(tmp_path: Path) -> None:
    assert project.root(tmp_path) == tmp_path.resolve()


def test_a_url_is_shown_without_its_password() -> None:
    assert project.shown("postgresql://gw:s3cret@db:5432/gw") == "postgresql://gw:***@db:5432/gw"
    assert project.shown("not-a-url") == "not-a-url"


def test_the_demo_marker_lives_while_its_server_does(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path}/credit-gateway.db"
    assert project.demo_sandbox(url) is None
    with project.announce_sandbox(url, "http://127.0.0.1:8600/sandbox"):
        assert project.demo_sandbox(url) == "http://127.0.0.1:8600/sandbox"
    assert project.demo_sandbox(url) is None and not list(tmp_path.iterdir())

    gone = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True, text=True)
    marker = tmp_path / "credit-gateway.db.sandbox.json"
    marker.write_text(json.dumps({"base_url": "http://x/sandbox", "pid": int(gone.stdout)}), encoding="utf-8")
    assert project.demo_sandbox(url) is None  # left by a server that has stopped
    marker.write_text(json.dumps({"base_url": "http://x/sandbox", "pid": os.getpid()}), encoding="utf-8")
    assert project.demo_sandbox(url) == "http://x/sandbox"
    assert project.demo_sandbox("postgresql://u@h/db") is None  # PostgreSQL: no marker (README)
