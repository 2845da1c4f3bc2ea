"""Turning a container spec into argv + environment, as the kubelet would.

Pure functions for ``$(VAR)`` expansion, downward-API field paths, mount-path
and Service-name rewriting, plus the env assembly that needs Secrets and
ConfigMaps from the API server.
"""

from __future__ import annotations

import base64
import math
import re
from collections.abc import Awaitable, Callable
from decimal import Decimal

# (service, namespace, explicitly a Service name: ``.svc`` form) -> address
Resolver = Callable[[str, str, bool], "str | None"]
Fetch = Callable[[str, str, str], Awaitable["dict | None"]]


class ConfigError(Exception):
    """The container cannot be created yet (missing Secret/ConfigMap/key)."""


def expand_vars(text: str, env: dict[str, str]) -> str:
    """Kubernetes ``$(VAR)`` expansion: unknown refs stay, ``$$`` escapes ``$``."""
    out: list[str] = []
    i = 0
    while i < len(text):
        if text.startswith("$$", i):
            out.append("$")
            i += 2
        elif text.startswith("$(", i):
            end = text.find(")", i + 2)
            if end < 0:
                out.append(text[i:])
                break
            name = text[i + 2 : end]
            out.append(env[name] if name in env else text[i : end + 1])
            i = end + 1
        else:
            out.append(text[i])
            i += 1
    return "".join(out)


_LABEL_PATH = re.compile(r"^metadata\.(labels|annotations)\['(.+)'\]$")


def field_ref(pod: dict, path: str) -> str:
    """Value of a downward-API ``fieldRef.fieldPath`` for this pod."""
    meta, spec, status = pod.get("metadata", {}), pod.get("spec", {}), pod.get("status", {})
    simple = {
        "metadata.name": meta.get("name"),
        "metadata.namespace": meta.get("namespace"),
        "metadata.uid": meta.get("uid"),
        "spec.nodeName": spec.get("nodeName"),
        "spec.serviceAccountName": spec.get("serviceAccountName", "default"),
        "status.podIP": status.get("podIP"),
        "status.hostIP": status.get("hostIP"),
    }
    if path in simple:
        return str(simple[path] or "")
    if path == "status.podIPs":
        return ",".join(p["ip"] for p in status.get("podIPs", []))
    m = _LABEL_PATH.match(path)
    if m:
        return str(meta.get(m.group(1), {}).get(m.group(2), ""))
    raise ConfigError(f"unsupported fieldPath {path!r}")


_SUFFIX: dict[str, int | Decimal] = {
    "Ki": 2**10, "Mi": 2**20, "Gi": 2**30, "Ti": 2**40,
    "k": 10**3, "M": 10**6, "G": 10**9, "T": 10**12, "m": Decimal("0.001"),
}  # fmt: skip


def parse_quantity(q: str | int | float) -> Decimal:
    text = str(q)
    for suffix in sorted(_SUFFIX, key=len, reverse=True):
        if text.endswith(suffix):
            return Decimal(text[: -len(suffix)]) * Decimal(_SUFFIX[suffix])
    return Decimal(text)


def resource_ref(container: dict, ref: dict) -> str:
    """``resourceFieldRef``: limit (or request) divided by divisor, rounded up."""
    kind, _, res = ref["resource"].partition(".")
    resources = container.get("resources", {})
    value = resources.get(kind, {}).get(res) or resources.get("requests", {}).get(res)
    if value is None:
        return "0"
    divisor = parse_quantity(ref.get("divisor", "1"))
    return str(math.ceil(parse_quantity(value) / divisor))


def _decode(data: dict, binary: bool) -> dict[str, str]:
    if binary:
        return {k: base64.b64decode(v).decode(errors="replace") for k, v in data.items()}
    return dict(data)


async def _source_data(fetch: Fetch, ns: str, kind: str, ref: dict) -> dict[str, str] | None:
    obj = await fetch(kind, ns, ref["name"])
    if obj is None:
        if ref.get("optional"):
            return None
        raise ConfigError(f"{kind[:-1]} {ns}/{ref['name']} not found")
    if kind == "secrets":
        return _decode(obj.get("data") or {}, True)
    return {**_decode(obj.get("binaryData") or {}, True), **(obj.get("data") or {})}


async def build_env(
    pod: dict, container: dict, base: dict[str, str], fetch: Fetch
) -> dict[str, str]:
    """Container environment: ``base`` overlaid by envFrom, then env (in order)."""
    ns = pod["metadata"]["namespace"]
    env = dict(base)
    for src in container.get("envFrom", []):
        for kind, key in (("configmaps", "configMapRef"), ("secrets", "secretRef")):
            if key in src:
                data = await _source_data(fetch, ns, kind, src[key])
                for k, v in (data or {}).items():
                    env[src.get("prefix", "") + k] = v
    for item in container.get("env", []):
        name = item["name"]
        source = item.get("valueFrom")
        if source is None:
            env[name] = expand_vars(item.get("value", ""), env)
        elif "fieldRef" in source:
            env[name] = field_ref(pod, source["fieldRef"]["fieldPath"])
        elif "resourceFieldRef" in source:
            env[name] = resource_ref(container, source["resourceFieldRef"])
        else:
            kind, ref = (
                ("secrets", source["secretKeyRef"])
                if "secretKeyRef" in source
                else ("configmaps", source["configMapKeyRef"])
            )
            data = await _source_data(fetch, ns, kind, ref)
            if data is None:
                continue
            if ref["key"] not in data:
                if ref.get("optional"):
                    continue
                raise ConfigError(f"key {ref['key']!r} not in {kind[:-1]} {ns}/{ref['name']}")
            env[name] = data[ref["key"]]
    return env


def rewrite_path(value: str, mounts: list[tuple[str, str]]) -> str:
    """Map a value starting with a mount path (or ``--opt=<path>``) to the host dir."""
    prefix, sep, rest = value.partition("=") if value.startswith("-") else ("", "", value)
    for mount, local in sorted(mounts, key=lambda m: len(m[0]), reverse=True):
        mount = mount.rstrip("/") or "/"
        if rest == mount or rest.startswith(mount + "/"):
            return prefix + sep + local + rest[len(mount) :]
    return value


_HOST = re.compile(
    r"(?<![A-Za-z0-9._-])[a-z0-9](?:[a-z0-9-]*[a-z0-9])?(?:\.[a-z0-9](?:[a-z0-9-]*[a-z0-9])?)*"
    r"(?![A-Za-z0-9._-])"
)
_URL_AUTHORITY = re.compile(r"://(?:[^/@\s]*@)?$")


def rewrite_hosts(value: str, namespace: str, resolve: Resolver) -> str:
    """Replace Service DNS names with their loopback address (see package docs)."""

    def repl(m: re.Match[str]) -> str:
        token = m.group(0)
        parts = token.split(".")
        target: tuple[str, str] | None = None
        explicit = parts[2:] in (["svc"], ["svc", "cluster", "local"])
        if len(parts) == 2 or explicit:
            target = (parts[0], parts[1])
        elif len(parts) == 1:
            before, after = value[: m.start()], value[m.end() :]
            in_url = _URL_AUTHORITY.search(before) and re.match(r"(?:$|[:/?#])", after)
            host_port = before == "" and re.fullmatch(r":\d+", after)
            if in_url or host_port:
                target = (parts[0], namespace)
        if target is None:
            return token
        return resolve(target[0], target[1], explicit) or token

    return _HOST.sub(repl, value)
