"""Checking a presented secret against the expected one, in constant time."""

from __future__ import annotations

import hmac


def secret_matches(expected: str, presented: str | None) -> bool:
    """Whether ``presented`` is ``expected`` (never for an empty expectation).

    Bytes, so that a non-ASCII header is a mismatch rather than a TypeError.
    """
    return (
        bool(expected)
        and presented is not None
        and hmac.compare_digest(expected.encode(), presented.encode("utf-8", "surrogateescape"))
    )


def bearer_token(authorization: str | None) -> str | None:
    """The token of an ``Authorization: Bearer <token>`` header, else None."""
    if authorization is None:
        return None
    scheme, _, value = authorization.strip().partition(" ")
    return (value.strip() or None) if scheme.lower() == "bearer" else None
