"""Pure builders: a frozen :class:`ClusterSpec` in, Kubernetes manifest dicts out.

No I/O, no randomness, no API client: the controller passes in tokens, keys
and the scheduler address, and creates what these return. One module per
kind; :mod:`.ownership` documents who owns what (everything: the DaskCluster).
"""

from .labels import (
    cluster_label_selector,
    cluster_labels,
    component_labels,
    instance_selector,
    route_name,
    scheduler_pod_name,
    scheduler_selector,
    secret_name,
    selector_string,
    service_name,
    shared_auth_name,
    shared_drop_credentials_name,
    shared_strip_prefix_name,
    strip_prefix_name,
    worker_generate_name,
    worker_selector,
)
from .ownership import cluster_owner_reference, merge_json_objects, owner_reference
from .routes import (
    build_drop_credentials_middleware,
    build_forward_auth_middleware,
    build_ingressroute,
    build_ingressroute_tcp,
    build_strip_prefix_middleware,
    dashboard_path,
    sni_name,
)
from .scheduler import build_scheduler_pod
from .secret import build_secret
from .service import build_service
from .spec import ClusterSpec
from .worker import build_worker_pod

__all__ = [
    "ClusterSpec",
    "build_drop_credentials_middleware",
    "build_forward_auth_middleware",
    "build_ingressroute",
    "build_ingressroute_tcp",
    "build_scheduler_pod",
    "build_secret",
    "build_service",
    "build_strip_prefix_middleware",
    "build_worker_pod",
    "cluster_label_selector",
    "cluster_labels",
    "cluster_owner_reference",
    "component_labels",
    "dashboard_path",
    "instance_selector",
    "merge_json_objects",
    "owner_reference",
    "route_name",
    "scheduler_pod_name",
    "scheduler_selector",
    "secret_name",
    "selector_string",
    "service_name",
    "shared_auth_name",
    "shared_drop_credentials_name",
    "shared_strip_prefix_name",
    "sni_name",
    "strip_prefix_name",
    "worker_generate_name",
    "worker_selector",
]
