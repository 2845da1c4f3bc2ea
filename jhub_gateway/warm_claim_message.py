"""The one message of a warm pod's claim channel: both ends' codec (no I/O).

The controller encodes it (``controller.warmclaim``), the warm pod parses it
(``runtime.warm_pod``). It carries the cluster's secrets, so its repr never shows them.
"""

from __future__ import annotations

import json
from dataclasses import dataclass

__all__ = ["CLAIM_FIELDS", "Claim", "WarmClaimError", "parse_warm_claim"]

CLAIM_FIELDS = ("cluster_name", "api_url", "api_token", "tls_cert", "tls_key", "args")


class WarmClaimError(ValueError):
    """A claim message that cannot be used (the claimant is told why)."""


@dataclass(frozen=True)
class Claim:
    cluster_name: str
    api_url: str
    api_token: str
    tls_cert: str
    tls_key: str
    args: tuple[str, ...]

    def __repr__(self) -> str:
        return f"Claim({self.cluster_name!r}, <credentials redacted>)"

    def encode(self) -> bytes:
        """The claim as the one JSON line the warm pod reads."""
        message = {name: getattr(self, name) for name in CLAIM_FIELDS}
        message["args"] = list(self.args)
        return json.dumps(message).encode() + b"\n"


def parse_warm_claim(data: bytes) -> Claim:
    """The claim in ``data``; ``WarmClaimError`` says what is wrong with it."""
    try:
        message = json.loads(data)
    except ValueError:
        raise WarmClaimError("the claim is not JSON") from None
    if not isinstance(message, dict):
        raise WarmClaimError("the claim must be a JSON object")
    missing = [f for f in CLAIM_FIELDS if f not in message]
    if missing:
        raise WarmClaimError(f"the claim lacks {missing}")
    strings = CLAIM_FIELDS[:-1]
    if not all(isinstance(message[f], str) and message[f] for f in strings):
        raise WarmClaimError(f"{list(strings)} must be non-empty strings")
    args = message["args"]
    if not isinstance(args, list) or not all(isinstance(a, str) for a in args):
        raise WarmClaimError("args must be a list of strings")
    return Claim(**{f: message[f] for f in strings}, args=tuple(args))
