"""Request signing of the target protocols (PROTOCOLS.md), as pure functions with fixed test vectors.

* national: lowercase hex HMAC-SHA256(app_secret, METHOD\\nPATH\\nTIMESTAMP\\nNONCE\\nhex(SHA-256(body))), PATH with
  its query string;
* provincial: HMAC-SM3 (GB/T 32905 in HMAC, RFC 2104) over the exclusive XML canonicalisation (C14N 1.0, no
  comments) of the ``<Body>`` element. SM3 comes from PyCA ``cryptography``.
"""

from __future__ import annotations

import hashlib
import hmac

from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives import hmac as crypto_hmac
from lxml import etree


def national_string_to_sign(method: str, path: str, timestamp_ms: int, nonce: str, body: bytes) -> bytes:
    return f"{method.upper()}\n{path}\n{timestamp_ms}\n{nonce}\n{hashlib.sha256(body).hexdigest()}".encode()


def national_signature(secret: str, method: str, path: str, timestamp_ms: int, nonce: str, body: bytes) -> str:
    message = national_string_to_sign(method, path, timestamp_ms, nonce, body)
    return hmac.new(secret.encode(), message, hashlib.sha256).hexdigest()


def sm3(data: bytes) -> str:
    digest = hashes.Hash(hashes.SM3())
    digest.update(data)
    return digest.finalize().hex()


def hmac_sm3(key: bytes, data: bytes) -> str:
    mac = crypto_hmac.HMAC(key, hashes.SM3())
    mac.update(data)
    return mac.finalize().hex()


def exclusive_c14n(element: etree._Element) -> bytes:
    return etree.tostring(element, method="c14n", exclusive=True, with_comments=False)


def provincial_signature(key: str, body: etree._Element) -> str:
    return hmac_sm3(key.encode(), exclusive_c14n(body))
