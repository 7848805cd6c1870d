"""The API against its own OpenAPI document, by schemathesis: generated requests (valid and invalid) to a real
server, with an operator key and with a source key, every response checked by every check schemathesis has.

Deterministic: hypothesis runs derandomized with no example database, so each run sends the same requests.
"""

from __future__ import annotations

from collections import Counter
from typing import Any

import httpx
import pytest
import requests
import schemathesis
from hypothesis import HealthCheck, Phase, given, settings
from hypothesis.errors import Unsatisfiable
from schemathesis import GenerationMode
from schemathesis.checks import CHECKS
from schemathesis.config import SchemathesisConfig
from schemathesis.generation.feedback import NO_FEEDBACK  # generation must not depend on earlier answers

from tests.conftest import bearer

EXAMPLES = 8  # per operation and generation mode, each sent with two keys: about 620 requests per database
# Rules JSON Schema cannot express, so schema-valid data may still be refused with 422: check characters (USCC,
# ID numbers), real calendar dates and date order in records; a report period's calendar validity.
REFUSES_SCHEMA_VALID_DATA = [
    "POST /api/v1/{kind}",
    "POST /api/v1/{kind}/batch",
    "GET /api/v1/rates",
    "POST /api/v1/reports",
    "POST /api/v1/credit-checks",  # the subject's USCC or ID number has a check character
]


def _config() -> SchemathesisConfig:
    return SchemathesisConfig.from_dict(
        {
            # Unknown query parameters are ignored, as HTTP APIs commonly do; the document does not promise a 4xx.
            "generation": {"allow-extra-parameters": False},
            "operations": [
                {
                    "include-name": REFUSES_SCHEMA_VALID_DATA,
                    "checks": {
                        "positive_data_acceptance": {"expected-statuses": ["2xx", "401", "403", "404", "409", "422"]}
                    },
                }
            ],
        }
    )


def fuzz(base_url: str, keys: list[str]) -> Counter[str]:
    """Every documented operation, valid and invalid requests, each sent with every key and checked by every
    check; returns how often each (operation, status) was seen."""
    spec = httpx.get(f"{base_url}/openapi.json").json()
    schema = schemathesis.openapi.from_dict(spec, config=_config())
    checks = list(CHECKS.get_all())
    seen: Counter[str] = Counter()
    session = requests.Session()
    failures: list[str] = []
    for result in schema.get_all_operations():
        operation = result.ok()
        for mode in (GenerationMode.POSITIVE, GenerationMode.NEGATIVE):

            @settings(
                max_examples=EXAMPLES,
                derandomize=True,
                database=None,
                deadline=None,
                phases=[Phase.explicit, Phase.generate],
                suppress_health_check=list(HealthCheck),
                print_blob=False,
            )
            @given(case=operation.as_strategy(generation_mode=mode, feedback=NO_FEEDBACK))
            def call(case: Any) -> None:
                for key in keys:  # generating a case costs more than sending it: each case goes with each key
                    response = case.call_and_validate(
                        base_url=base_url, session=session, headers=bearer(key), checks=checks
                    )
                    seen[f"{case.operation.label} {response.status_code}"] += 1

            try:
                call()
            except Unsatisfiable:  # nothing to get wrong: no parameters and no body
                assert mode == GenerationMode.NEGATIVE and not operation.body and not list(operation.iter_parameters())
            except (Exception, BaseExceptionGroup) as exc:  # every operation's failure, not only the first
                failures.append(f"{operation.label} ({mode.value}): {exc}")
    assert not failures, "\n\n".join(failures)
    return seen


@pytest.mark.slow
@pytest.mark.timeout(600)  # about a minute alone; much longer when the machine is shared
def test_every_answer_conforms_to_the_openapi_document(base_url: str, operator_key: str, source_key: str) -> None:
    seen = fuzz(base_url, [operator_key, source_key])
    assert sum(seen.values()) >= 500, seen  # over the two databases, more than 1,000
    assert not [s for s in seen if s.endswith(tuple(f" 5{n:02d}" for n in range(100)))], seen
