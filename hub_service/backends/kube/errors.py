"""Kubernetes API failures as the precise JSON errors the service answers with."""

from __future__ import annotations

import contextlib
import logging
from collections.abc import Iterator

from jhub_gateway.kube.client import Forbidden, Invalid, KubeError, NotFound, Unavailable

from ...errors import GatewayError, InvalidOptions, ServiceUnavailable

log = logging.getLogger("jhub_gateway.hub_service")


def gateway_error(exc: KubeError, action: str) -> GatewayError:
    """A caller-safe error for a failed ``action`` (e.g. "create the cluster")."""
    if isinstance(exc, Unavailable):
        retry = max(1, int(exc.retry_after or 5))
        return ServiceUnavailable(
            f"could not {action}: the Kubernetes API is unavailable ({exc.status or 'no answer'})",
            reason="kubernetes_unavailable",
            retry_after=retry,
        )
    if isinstance(exc, Invalid):
        # Our own validation should have caught it; say what the API server said.
        return InvalidOptions(
            f"could not {action}: Kubernetes refused it: {exc.message or exc.reason}",
            reason="rejected_by_kubernetes",
        )
    if isinstance(exc, NotFound):
        return InvalidOptions(
            f"could not {action}: {exc.message or 'not found'} (does the namespace exist?)",
            reason="kubernetes_not_found",
        )
    if isinstance(exc, Forbidden):
        return GatewayError(
            f"could not {action}: the gateway lacks Kubernetes permission ({exc.message})",
            reason="kubernetes_forbidden",
            status=502,
        )
    return GatewayError(
        f"could not {action}: Kubernetes answered {exc.status} {exc.reason}",
        reason="kubernetes_error",
        status=502,
    )


@contextlib.contextmanager
def kube_errors(action: str) -> Iterator[None]:
    """Re-raise any ``KubeError`` inside as the matching ``GatewayError``."""
    try:
        yield
    except KubeError as exc:
        log.warning("Kubernetes call failed while trying to %s: %s", action, exc)
        raise gateway_error(exc, action) from None
