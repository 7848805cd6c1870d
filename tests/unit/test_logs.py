"""No resident ID number reaches a log line in clear, whoever writes it."""

from __future__ import annotations

import logging

import pytest

from gateway.logs import MaskIdNumbers, mask
from tests.factories import COMPANY, make_resident_id


def test_mask_hides_id_numbers_but_not_other_codes() -> None:
    number = make_resident_id()
    text = mask(f"refused {number} for {COMPANY} at 20261125103000123")
    assert number not in text
    assert f"{number[:4]}**********{number[-4:]}" in text
    assert COMPANY in text  # organisations' codes are public


def test_filter_masks_records_from_any_logger(caplog: pytest.LogCaptureFixture) -> None:
    number = make_resident_id()
    logger = logging.getLogger("uvicorn.access")
    caplog.handler.addFilter(MaskIdNumbers())
    with caplog.at_level(logging.INFO):
        logger.info('"GET /api/v1/licences?q=%s HTTP/1.1" 200', number)
    assert number not in caplog.text
    assert number[-4:] in caplog.text
