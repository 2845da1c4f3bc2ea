"""Cluster names and DNS-safe slugs.

Cluster names travel in URL paths (``/clusters/<name>/``), Traefik rules
(``HostSNI(`daskgateway-<name>`)``), TLS SANs and Kubernetes object names, so
they are restricted to lowercase DNS labels, optionally qualified by a
Kubernetes namespace as ``<namespace>.<name>``.
"""

from __future__ import annotations

import hashlib
import re
import uuid

__all__ = ["is_valid_cluster_name", "new_cluster_name", "safe_slug"]

_LABEL = r"[a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?"
_CLUSTER_NAME_RE = re.compile(rf"(?:{_LABEL}\.)?{_LABEL}")
_SLUG_RE = re.compile(_LABEL)
_HASH_LENGTH = 8


def new_cluster_name() -> str:
    """A fresh cluster name: 32 lowercase hex characters (uuid4)."""
    return uuid.uuid4().hex


def is_valid_cluster_name(name: object) -> bool:
    """True for ``<label>`` or ``<namespace>.<label>``, each a lowercase DNS-1123 label.

    That excludes ``/``, ``..``, whitespace, backticks, uppercase and anything
    else that could escape a URL path segment, a Traefik rule or an SNI name.
    """
    return isinstance(name, str) and _CLUSTER_NAME_RE.fullmatch(name) is not None


def safe_slug(text: str, max_length: int = 63) -> str:
    """Map arbitrary text (a user name, say) to a DNS-1123 label, deterministically.

    Text that already is a valid label is returned unchanged; otherwise the
    cleaned text gets a short hash of the original appended, so distinct
    inputs ("Alice", "alice", "a.lice") never collide on the same slug.
    """
    if max_length < _HASH_LENGTH + 2:
        raise ValueError(f"max_length must be at least {_HASH_LENGTH + 2}, got {max_length}")
    if len(text) <= max_length and _SLUG_RE.fullmatch(text):
        return text
    digest = hashlib.sha256(text.encode("utf-8", "surrogatepass")).hexdigest()[:_HASH_LENGTH]
    cleaned = re.sub(r"[^a-z0-9]+", "-", text.lower()).strip("-")
    room = max_length - _HASH_LENGTH - 1
    cleaned = cleaned[:room].rstrip("-")
    return f"{cleaned}-{digest}" if cleaned else digest
