"""The shipped JSON Schema files against the real API (issue 8, defect 8): one corpus of records, each posted to a
live gateway and checked against ``schemas/contract/<kind>.schema.json``. Both must accept it or both refuse it,
except the rules JSON Schema cannot express and the spellings the API forgives, which each case names
(tests/corpus.py). Also here: dates before 1949-10-01 are refused at the door (defect 6).
"""

from __future__ import annotations

import httpx

from tests import corpus
from tests.conftest import bearer
from tests.factories import commitment, licence


def test_the_api_and_the_contract_files_agree_on_the_corpus(client: httpx.Client, source_key: str) -> None:
    disagreements = []
    for case in corpus.unique(corpus.CASES):
        reply = client.post(f"/api/v1/{case.kind}", json=case.record, headers=bearer(source_key))
        assert reply.status_code in (200, 201, 422), (case.name, reply.status_code, reply.text)
        api_accepts = reply.status_code in (200, 201)
        schema_accepts = corpus.schema_accepts(case.kind, case.record)
        if (api_accepts, schema_accepts) != (case.api_accepts, case.schema_accepts):
            disagreements.append((case.name, {"api": api_accepts, "schema": schema_accepts}, reply.text[:300]))
    assert disagreements == []


def test_dates_before_the_founding_are_refused_naming_the_bound(client: httpx.Client, source_key: str) -> None:
    for kind, record, field in [
        ("licences", licence(decision_date="0001-01-01"), "decision_date"),
        ("licences", licence(valid_from="1899-12-31"), "valid_from"),
        ("commitments", commitment(commitment_date="1949-09-30"), "commitment_date"),
    ]:
        reply = client.post(f"/api/v1/{kind}", json=record, headers=bearer(source_key))
        assert reply.status_code == 422, reply.text
        assert reply.headers["content-type"].startswith("application/problem+json")
        [error] = [e for e in reply.json()["errors"] if e["field"] == field]
        assert error["code"] == "invalid_date" and "1949-10-01" in error["message"], error
    on_the_day = licence(source_id="XK-1949", decision_date="1949-10-01", valid_from="1949-10-01")
    assert client.post("/api/v1/licences", json=on_the_day, headers=bearer(source_key)).status_code == 201
