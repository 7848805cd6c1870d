"""Excerpts of exchanges: secrets removed wherever they stand, resident ID numbers masked, 8 KB at most."""

from __future__ import annotations

import json
import re

from adapters.base import Reply, Request
from adapters.excerpts import LIMIT, failed, reply_excerpt, request_excerpt
from tests.factories import COMPANY, make_resident_id, with_wrong_check_digit

ID = make_resident_id()


def test_headers_query_json_form_and_bearer_values_lose_their_secrets() -> None:
    request = Request(
        "POST",
        "/api/v1/batches?appKey=demo&sign=abc123&timestamp=1",
        {"Authorization": "Bearer tok-SECRET", "X-Signature": "sig-SECRET", "Content-Type": "application/json"},
        json.dumps(
            {"items": [{"name": "张三", "idNumber": ID, "uscc": COMPANY}], "access_token": "tok2-SECRET"},
            ensure_ascii=False,
        ).encode(),
    )
    text = request_excerpt(request)
    assert "SECRET" not in text and "abc123" not in text
    assert "Authorization: ***" in text and "X-Signature: ***" in text and "sign=%2A%2A%2A" in text
    assert "appKey=demo" in text and "张三" in text and COMPANY in text  # the rest stays readable
    assert ID not in text and ID[:4] + "*" * 10 + ID[-4:] in text
    form = request_excerpt(
        Request(
            "POST",
            "/oauth/token",
            {"Content-Type": "application/x-www-form-urlencoded"},
            b"grant_type=client_credentials&client_id=hh&client_secret=cs-SECRET",
        )
    )
    assert "SECRET" not in form and "client_id=hh" in form
    free = reply_excerpt(Reply(401, {}, b"use Bearer abc.def-SECRET next time"))
    assert "SECRET" not in free and "Bearer ***" in free


def test_xml_elements_and_attributes_named_as_secrets_are_hidden() -> None:
    body = (
        f'<Exchange sign="s-SECRET" sender="hh"><Header><Sm3Mac>m-SECRET</Sm3Mac></Header>'
        f"<Item><ZJHM>{ID}</ZJHM><Reason>名称不一致</Reason></Item></Exchange>"
    ).encode()
    text = reply_excerpt(Reply(200, {"Content-Type": "application/xml; charset=utf-8"}, body))
    assert text.startswith("HTTP 200")
    assert "SECRET" not in text and 'sender="hh"' in text and "名称不一致" in text and ID not in text


def test_only_valid_resident_ids_are_masked_and_long_text_is_cut_within_the_limit() -> None:
    wrong = with_wrong_check_digit(ID)
    text = reply_excerpt(Reply(200, {}, f"{ID} {wrong} 9143120012345678".encode()))
    assert ID not in text and wrong in text  # an 18-digit number without a valid check digit is not an ID
    long = reply_excerpt(Reply(200, {"Content-Type": "text/plain"}, ("公示" * 10_000).encode()))
    assert len(long.encode()) <= LIMIT and "已截断" in long
    binary = reply_excerpt(Reply(200, {}, bytes(range(256)) * 4))
    assert "binary, 1024 bytes" in binary
    assert failed("timeout", "no answer within 30 s") == "（无应答）timeout: no answer within 30 s"


def test_a_large_xml_batch_is_read_only_as_far_as_the_excerpt_shows_and_nothing_leaks_at_the_cut() -> None:
    """A 500-item batch is cut near 8 KB before it is cleaned; wherever the cut falls (the padding moves it through
    every position of an item), no secret value and no part of an ID number shows, although the cleaning shortens
    what comes before the cut (ASCII: a character is a byte, so the cut lies close to the limit)."""
    for pad in range(0, 130, 3):
        items = "".join(
            f"<Item><Sm3Mac>m-{'S' * 40}</Sm3Mac><ZJHM>{ID}</ZJHM><Reason>name differs</Reason></Item>"
            for _ in range(500)
        )
        body = f'<Exchange sender="hh"><Pad>{"x" * pad}</Pad>{items}</Exchange>'.encode()
        text = reply_excerpt(Reply(200, {"Content-Type": "application/xml"}, body))
        found = re.search(r"原长 (\d+) 字节", text)
        assert len(text.encode()) <= LIMIT and found and len(body) < int(found[1]) < len(body) + 100
        assert "m-S" not in text and ID[:6] not in text and ID[-6:] not in text
        assert text.count("<Sm3Mac>***</Sm3Mac>") > 40  # the kept part is cleaned, not dropped


def test_a_cut_through_plain_text_never_shows_part_of_an_id_number_or_a_bearer_value() -> None:
    """Thirty Bearer values shrink to ``***`` before the cut, pulling what stands at the cut well inside the limit."""
    before = ("Bearer " + "t" * 200 + " ") * 30
    for shift in range(-60, 30, 2):  # the reply head (status, headers) stands before the body: about 36 characters
        body = (before + " " * (LIMIT + 64 - 9 - len(before) + shift) + ID + " Bearer tok-x " + "z " * 3000).encode()
        text = reply_excerpt(Reply(200, {"Content-Type": "text/plain"}, body))
        assert len(text.encode()) <= LIMIT and "已截断" in text
        assert ID[:6] not in text and ID[-6:] not in text and "tttt" not in text and "tok-" not in text
