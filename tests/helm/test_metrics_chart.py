"""The chart's metrics wiring: a scrape token for both components, opt-in monitors."""

from __future__ import annotations

import base64

from traitlets.config import Config

from .chart import FULLNAME, config_text, container, env_of, render

API = ("Deployment", f"api-{FULLNAME}")
CONTROLLER = ("Deployment", f"controller-{FULLNAME}")
SECRET = ("Secret", f"api-{FULLNAME}")

MONITORS = """
gateway:
  prefix: /services/dask-gateway
metrics:
  serviceMonitor:
    enabled: true
    interval: 15s
    labels: {release: prom}
"""


def _controller_config(docs) -> Config:
    """The controller's generated config file, loaded as the pod loads it."""
    (text,) = docs[("ConfigMap", f"controller-{FULLNAME}")]["data"].values()
    namespace: dict = {"get_config": Config}
    exec(compile(text, "jhub_gateway_controller_config.py", "exec"), namespace)
    return namespace["c"]


def _annotations(docs, key):
    return docs[key]["spec"]["template"]["metadata"].get("annotations") or {}


def test_defaults_are_closed_and_both_components_get_the_token() -> None:
    docs = render()
    token = base64.b64decode(docs[SECRET]["data"]["metrics-token"]).decode()
    assert len(token) >= 32
    for key, var in ((API, "JHUB_GATEWAY_METRICS_TOKEN"),
                     (CONTROLLER, "JHUB_GATEWAY_CONTROLLER_METRICS_TOKEN")):  # fmt: skip
        ref = env_of(container(docs, key))[var]["valueFrom"]["secretKeyRef"]
        assert ref == {"name": f"api-{FULLNAME}", "key": "metrics-token"}
        assert not any(a.startswith("prometheus.io/") for a in _annotations(docs, key))
    assert not any(kind in ("ServiceMonitor", "PodMonitor") for kind, _ in docs)
    assert _controller_config(docs).KubeController.metrics_public is False


def test_monitors_scrape_with_the_token_under_the_prefix() -> None:
    docs = render(MONITORS)
    monitor = docs[("ServiceMonitor", f"api-{FULLNAME}")]
    assert monitor["metadata"]["labels"]["release"] == "prom"
    (endpoint,) = monitor["spec"]["endpoints"]
    assert endpoint["path"] == "/services/dask-gateway/metrics"
    assert endpoint["interval"] == "15s"
    assert endpoint["bearerTokenSecret"] == {"name": f"api-{FULLNAME}", "key": "metrics-token"}
    pods = docs[("PodMonitor", f"controller-{FULLNAME}")]["spec"]["podMetricsEndpoints"]
    assert pods[0]["port"] == "health" and pods[0]["path"] == "/metrics"
    # the selectors pick the components' pods
    labels = docs[API]["spec"]["template"]["metadata"]["labels"]
    assert monitor["spec"]["selector"]["matchLabels"].items() <= labels.items()


def test_scrape_annotations_open_metrics_as_the_values_file_warns() -> None:
    docs = render("metrics: {scrapeAnnotations: true}")
    assert _annotations(docs, API)["prometheus.io/path"] == "/metrics"
    assert _annotations(docs, CONTROLLER)["prometheus.io/scrape"] == "true"
    assert _controller_config(docs).KubeController.metrics_public is True
    config = config_text(docs)
    namespace: dict = {"get_config": Config}
    exec(compile(config, "jhub_gateway_config.py", "exec"), namespace)  # as the pod loads it
    assert namespace["c"].ServiceMetrics.public is True
