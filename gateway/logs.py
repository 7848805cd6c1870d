"""Logging set-up with a filter that masks resident ID numbers, whoever logs them (uvicorn included).

An 18-character ID number must never reach a log in clear (DEVELOPERS.md); masking at the handler catches
messages we did not write ourselves, such as an access-log line with a number in a query string.
"""

from __future__ import annotations

import logging
import re

from schemas.identifiers import mask_id_number

_ID_NUMBER = re.compile(r"(?<![0-9A-Za-z])\d{17}[\dXx](?![0-9A-Za-z])")


def mask(text: str) -> str:
    return _ID_NUMBER.sub(lambda m: mask_id_number(m.group(0)), text)


class MaskIdNumbers(logging.Filter):
    def filter(self, record: logging.LogRecord) -> bool:
        message = record.getMessage()
        masked = mask(message)
        if masked != message:
            record.msg, record.args = masked, None
        return True


def configure(level: str) -> None:
    handler = logging.StreamHandler()
    handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s %(message)s"))
    handler.addFilter(MaskIdNumbers())
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level)
    for name in ("uvicorn", "uvicorn.error", "uvicorn.access"):
        logger = logging.getLogger(name)
        logger.handlers[:] = []
        logger.propagate = True
    # httpx logs every request, and APScheduler every job run, at INFO: at the delivery engine's rates that is
    # thousands of lines a second, each formatted and masked, for what the attempt rows already record. Shown
    # only when debugging; their warnings (a skipped run, a failed request) still come through.
    for name in ("httpx", "httpcore", "apscheduler.executors", "apscheduler.scheduler"):
        logging.getLogger(name).setLevel(logging.DEBUG if level == "DEBUG" else logging.WARNING)
