"""Materialising pod volumes as directories under the pod's work dir."""

from __future__ import annotations

import asyncio
import base64
import os
from collections.abc import Awaitable, Callable
from pathlib import Path

from .podenv import ConfigError, Fetch, field_ref

# Files are (relative path, bytes, mode); written in a thread to keep the loop free.
Files = list[tuple[str, bytes, int]]


def _items(data: dict[str, bytes], items: list[dict] | None, mode: int) -> Files:
    if not items:
        return [(k, v, mode) for k, v in data.items()]
    out = []
    for item in items:
        if item["key"] not in data:
            raise ConfigError(f"key {item['key']!r} not found for volume item")
        out.append((item["path"], data[item["key"]], item.get("mode", mode)))
    return out


async def _object_files(fetch: Fetch, ns: str, kind: str, src: dict, mode: int) -> Files:
    name = src.get("secretName") or src.get("name", "")
    obj = await fetch(kind, ns, name)
    if obj is None:
        if src.get("optional"):
            return []
        raise ConfigError(f"{kind[:-1]} {ns}/{name} not found for volume")
    data: dict[str, bytes] = {
        k: base64.b64decode(v) for k, v in (obj.get("binaryData") or {}).items()
    }
    raw = obj.get("data") or {}
    for k, v in raw.items():
        data[k] = base64.b64decode(v) if kind == "secrets" else v.encode()
    return _items(data, src.get("items"), src.get("defaultMode", mode))


def _downward_files(pod: dict, items: list[dict], mode: int) -> Files:
    out = []
    for item in items:
        if "fieldRef" not in item:
            continue  # resourceFieldRef in volumes: not needed by anything we run
        value = field_ref(pod, item["fieldRef"]["fieldPath"]).encode()
        out.append((item["path"], value, item.get("mode", mode)))
    return out


# A projected serviceAccountToken source -> a token for the pod's ServiceAccount.
TokenSource = Callable[[dict], Awaitable[str]]


async def volume_files(pod: dict, volume: dict, fetch: Fetch, token: TokenSource) -> Files | None:
    """Files of one volume; None for an empty directory volume (emptyDir etc.)."""
    ns = pod["metadata"]["namespace"]
    if "secret" in volume:
        return await _object_files(fetch, ns, "secrets", volume["secret"], 0o644)
    if "configMap" in volume:
        return await _object_files(fetch, ns, "configmaps", volume["configMap"], 0o644)
    if "downwardAPI" in volume:
        api = volume["downwardAPI"]
        return _downward_files(pod, api.get("items", []), api.get("defaultMode", 0o644))
    if "projected" in volume:
        proj = volume["projected"]
        mode = proj.get("defaultMode", 0o644)
        files: Files = []
        for src in proj.get("sources", []):
            if "secret" in src:
                files += await _object_files(fetch, ns, "secrets", src["secret"], mode)
            elif "configMap" in src:
                files += await _object_files(fetch, ns, "configmaps", src["configMap"], mode)
            elif "downwardAPI" in src:
                files += _downward_files(pod, src["downwardAPI"].get("items", []), mode)
            elif "serviceAccountToken" in src:
                sat = src["serviceAccountToken"]
                files.append((sat["path"], (await token(sat)).encode(), mode))
        return files
    # emptyDir, and anything host-bound (hostPath, PVCs) degrades to an empty dir.
    return None


def _write(root: Path, files: Files | None) -> None:
    root.mkdir(parents=True, exist_ok=True)
    for rel, data, mode in files or []:
        path = root / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(data)
        os.chmod(path, mode)


async def materialise(pod: dict, root: Path, fetch: Fetch, token: TokenSource) -> dict[str, Path]:
    """Write every volume of the pod below ``root``; returns volume name -> dir."""
    dirs: dict[str, Path] = {}
    for volume in pod.get("spec", {}).get("volumes", []):
        files = await volume_files(pod, volume, fetch, token)
        path = root / volume["name"]
        await asyncio.to_thread(_write, path, files)
        dirs[volume["name"]] = path
    return dirs


def mounts_for(container: dict, dirs: dict[str, Path]) -> list[tuple[str, str]]:
    """(mountPath, local path) pairs of one container, honouring subPath."""
    out = []
    for m in container.get("volumeMounts", []):
        if m["name"] not in dirs:
            raise ConfigError(f"volume {m['name']!r} not found")
        local = dirs[m["name"]] / m.get("subPath", "")
        out.append((m["mountPath"], str(local).rstrip("/")))
    return out
