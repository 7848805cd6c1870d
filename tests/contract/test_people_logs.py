"""A name locked after five wrong passwords is a WARNING with its fields (and never the password tried)."""

from __future__ import annotations

import logging

import pytest

from gateway.people import People, SignInRefused
from tests.contract.test_people import ADMIN, PASSWORD, db, people  # noqa: F401 - fixtures


def test_a_lock_is_one_warning_naming_the_person(
    people: People,  # noqa: F811
    caplog: pytest.LogCaptureFixture,
) -> None:
    people.create(name="李四", role="operator", password=PASSWORD, department=None, actor=ADMIN)
    with caplog.at_level(logging.WARNING, logger="gateway.people"):
        for _ in range(6):
            with pytest.raises(SignInRefused):
                people.sign_in("李四", "wrong password!!")
    [locked] = [r for r in caplog.records if getattr(r, "event", None) == "person_locked"]
    assert locked.levelno == logging.WARNING
    assert locked.fields["person"] == "李四" and locked.fields["failures"] == 5  # type: ignore[attr-defined]
    assert "wrong password" not in caplog.text
