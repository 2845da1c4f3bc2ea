"""Render and lint the chart with the Helm SDK (real Helm code, no binary, offline)."""

from __future__ import annotations

import functools
from pathlib import Path
from typing import Any

import helm_python as helm
import yaml

CHART = Path(__file__).resolve().parents[2] / "helm" / "jhub-gateway"
RELEASE = "dask-gateway"
NAMESPACE = "dask-gateway"
FULLNAME = f"{RELEASE}-jhub-gateway"


@functools.cache
def chart() -> helm.Chart:
    return helm.Chart.load(CHART)


def values(text: str) -> dict[str, Any]:
    """A config.yaml parsed the way ``helm -f`` parses it (nulls and all)."""
    return helm.values_from_yaml(text)


def render(
    user_values: dict[str, Any] | str | None = None,
    release: str = RELEASE,
    namespace: str = NAMESPACE,
) -> dict[tuple[str, str], dict[str, Any]]:
    """Rendered manifests keyed by (kind, name); NOTES.txt under ("NOTES", "")."""
    if isinstance(user_values, str):
        user_values = values(user_values)
    rendered = chart().render(user_values or {}, name=release, namespace=namespace, is_install=True)
    docs: dict[tuple[str, str], dict[str, Any]] = {}
    for path, text in rendered.items():
        if path.endswith("NOTES.txt"):
            docs[("NOTES", "")] = {"text": text}
            continue
        for doc in yaml.safe_load_all(text):
            if doc:
                meta = doc["metadata"]
                name = meta["name"]
                if meta.get("namespace") not in (None, namespace):
                    name = f"{meta['namespace']}/{name}"
                key = (doc["kind"], name)
                assert key not in docs, f"{key} rendered twice"
                docs[key] = doc
    return docs


def manifests(docs: dict[tuple[str, str], dict[str, Any]]) -> list[dict[str, Any]]:
    return [d for k, d in docs.items() if k[0] != "NOTES"]


def config_text(docs: dict[tuple[str, str], dict[str, Any]]) -> str:
    return docs[("ConfigMap", f"api-{FULLNAME}")]["data"]["jhub_gateway_config.py"]


def container(docs: dict, kind_name: tuple[str, str], name: str | None = None) -> dict[str, Any]:
    pod = docs[kind_name]["spec"]["template"]["spec"]
    found = [c for c in pod["containers"] if name is None or c["name"] == name]
    return found[0]


def env_of(c: dict[str, Any]) -> dict[str, Any]:
    return {e["name"]: e for e in c.get("env", [])}


def lint(user_values: dict[str, Any] | None = None) -> dict[str, Any]:
    return helm.lint(CHART, user_values or {}, strict=True, namespace=NAMESPACE)


def crd_schemas() -> dict[tuple[str, str], dict[str, Any]]:
    """(apiVersion, kind) -> openAPIV3Schema of every CRD the chart ships."""
    schemas = {}
    for path in sorted((CHART / "crds").glob("*.yaml")):
        for doc in yaml.safe_load_all(path.read_text()):
            if not doc:
                continue
            group = doc["spec"]["group"]
            for version in doc["spec"]["versions"]:
                key = (f"{group}/{version['name']}", doc["spec"]["names"]["kind"])
                schemas[key] = version["schema"]["openAPIV3Schema"]
    return schemas
