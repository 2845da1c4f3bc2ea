"""Decoding ``application/vnd.kubernetes.protobuf`` request bodies into JSON objects.

client-go sends built-in kinds as protobuf: the 4-byte magic ``k8s\\0`` followed by a
``runtime.Unknown`` message whose ``typeMeta`` names the kind and whose ``raw`` holds
the object's own message. The message layouts (field numbers, names, types) come
from ``fields.txt``, a digest of the upstream ``generated.proto`` files made by
``tests/kube/tools/gen_proto_fields.py``; the decoder here is a generic protobuf
wire reader driven by that table. The result is the object as its JSON form would
have it (proto field names are the JSON names), so the rest of the emulator never
sees protobuf. Answers stay JSON: client-go sends
``Accept: application/vnd.kubernetes.protobuf, application/json`` and takes either.
"""

from __future__ import annotations

import base64
import datetime
import json
import struct
from functools import cache
from pathlib import Path
from typing import Any

MAGIC = b"k8s\x00"
CONTENT_TYPE = "application/vnd.kubernetes.protobuf"
META = "k8s.io.apimachinery.pkg.apis.meta.v1"
# apiVersion group -> proto package of its v1 (or named) version.
_PACKAGES = {
    "": "k8s.io.api.core",
    "apps": "k8s.io.api.apps",
    "batch": "k8s.io.api.batch",
    "rbac.authorization.k8s.io": "k8s.io.api.rbac",
    "networking.k8s.io": "k8s.io.api.networking",
    "policy": "k8s.io.api.policy",
    "autoscaling": "k8s.io.api.autoscaling",
    "authentication.k8s.io": "k8s.io.api.authentication",
    "authorization.k8s.io": "k8s.io.api.authorization",
    "coordination.k8s.io": "k8s.io.api.coordination",
    "discovery.k8s.io": "k8s.io.api.discovery",
    "events.k8s.io": "k8s.io.api.events",
    "scheduling.k8s.io": "k8s.io.api.scheduling",
    "storage.k8s.io": "k8s.io.api.storage",
    "meta.k8s.io": "k8s.io.apimachinery.pkg.apis.meta",
}
# Wrapper messages whose JSON form is a plain list of strings.
_STRING_LISTS = {"ExtraValue", "AttestationValue", "Verbs"}


class ProtobufError(ValueError):
    """The body is not a well-formed Kubernetes protobuf object we know."""


# (json name, type, repeated, inlined into the parent, zero value omitted)
Field = tuple[str, str, bool, bool, bool]


@cache
def messages() -> dict[str, dict[int, Field]]:
    table: dict[str, dict[int, Field]] = {}
    text = (Path(__file__).with_name("fields.txt")).read_text()
    for line in text.splitlines():
        name, *fields = line.split(" ")
        package = name.rsplit(".", 1)[0]
        entry: dict[int, Field] = {}
        for f in fields:
            if not f:
                continue
            num, fname, ftype = f.split("=", 2)
            repeated = ftype.startswith("*")
            ftype = ftype.lstrip("*")
            inline, omit = fname.startswith("^"), "~" in fname[:2]
            fname = fname.lstrip("^~")
            entry[int(num)] = (fname, _qualify(ftype, package), repeated, inline, omit)
        table[name] = entry
    return table


def _qualify(ftype: str, package: str) -> str:
    if ftype.startswith("map:"):
        _, key, value = ftype.split(":", 2)
        return f"map:{key}:{_qualify(value, package)}"
    if ftype.startswith("."):
        return ftype[1:]
    if ftype[0].isupper():
        return f"{package}.{ftype}"
    return ftype


# -- wire format ----------------------------------------------------------------


def _varint(buf: bytes, pos: int) -> tuple[int, int]:
    result = shift = 0
    while True:
        if pos >= len(buf):
            raise ProtobufError("truncated varint")
        b = buf[pos]
        pos += 1
        result |= (b & 0x7F) << shift
        if not b & 0x80:
            return result, pos
        shift += 7
        if shift > 70:
            raise ProtobufError("varint too long")


def _fields(buf: bytes) -> list[tuple[int, int, Any]]:
    """(field number, wire type, raw value) triples of one message."""
    out = []
    pos = 0
    while pos < len(buf):
        key, pos = _varint(buf, pos)
        num, wire = key >> 3, key & 7
        if wire == 0:
            value, pos = _varint(buf, pos)
        elif wire == 2:
            size, pos = _varint(buf, pos)
            if pos + size > len(buf):
                raise ProtobufError("truncated length-delimited field")
            value, pos = buf[pos : pos + size], pos + size
        elif wire == 1:
            value, pos = int.from_bytes(buf[pos : pos + 8], "little"), pos + 8
        elif wire == 5:
            value, pos = int.from_bytes(buf[pos : pos + 4], "little"), pos + 4
        else:
            raise ProtobufError(f"unsupported wire type {wire}")
        out.append((num, wire, value))
    return out


def _signed(value: int) -> int:
    return value - (1 << 64) if value >= 1 << 63 else value


def _time(msg: bytes, micro: bool) -> str | None:
    seconds = nanos = 0
    for num, _, value in _fields(msg):
        if num == 1:
            seconds = _signed(value)
        elif num == 2:
            nanos = _signed(value)
    if seconds == 0 and nanos == 0:
        return None  # the zero time: JSON ``null``, dropped
    stamp = datetime.datetime.fromtimestamp(seconds, datetime.timezone.utc)
    if micro:
        return stamp.strftime("%Y-%m-%dT%H:%M:%S") + f".{nanos // 1000:06d}Z"
    return stamp.strftime("%Y-%m-%dT%H:%M:%SZ")


def _scalar(ftype: str, wire: int, value: Any) -> Any:
    if ftype == "string":
        return bytes(value).decode()
    if ftype == "bytes":
        return base64.b64encode(bytes(value)).decode()
    if ftype == "bool":
        return bool(value)
    if ftype in ("int32", "int64"):
        return _signed(value)
    if ftype in ("double", "float"):
        size = 8 if wire == 1 else 4
        return struct.unpack("<d" if size == 8 else "<f", value.to_bytes(size, "little"))[0]
    raise ProtobufError(f"unsupported scalar type {ftype}")


_SCALARS = ("string", "bytes", "bool", "int32", "int64", "double", "float")


def _value(ftype: str, wire: int, value: Any) -> Any:
    if ftype in _SCALARS:
        return _scalar(ftype, wire, value)
    return decode_message(ftype, bytes(value))


def decode_message(name: str, buf: bytes) -> Any:
    """One message as its JSON value (object, or the special forms of meta types)."""
    short = name.rsplit(".", 1)[1]
    if name == f"{META}.Time":
        return _time(buf, False)
    if name == f"{META}.MicroTime":
        return _time(buf, True)
    if name.endswith("resource.Quantity"):
        return next((bytes(v).decode() for n, _, v in _fields(buf) if n == 1), "0")
    if name.endswith("intstr.IntOrString"):
        parts = {n: v for n, _, v in _fields(buf)}
        if parts.get(1, 0) == 1:
            return bytes(parts.get(3, b"")).decode()
        return _signed(parts.get(2, 0))
    if name in (f"{META}.FieldsV1", "k8s.io.apimachinery.pkg.runtime.RawExtension"):
        raw = next((bytes(v) for n, _, v in _fields(buf) if n == 1), b"")
        return json.loads(raw) if raw else None
    if name == f"{META}.Duration":
        nanos = next((_signed(v) for n, _, v in _fields(buf) if n == 1), 0)
        return f"{nanos / 1e9:g}s"
    if short in _STRING_LISTS:
        return [bytes(v).decode() for n, _, v in _fields(buf) if n == 1]
    layout = messages().get(name)
    if layout is None:
        raise ProtobufError(f"unknown protobuf message {name}")
    out: dict[str, Any] = {}
    for num, wire, value in _fields(buf):
        field = layout.get(num)
        if field is None:
            continue  # unknown field: skipped, as proto2 readers do
        fname, ftype, repeated, inline, omit = field
        if ftype.startswith("map:"):
            _, _, vtype = ftype.split(":", 2)
            entry = {n: (w, v) for n, w, v in _fields(bytes(value))}
            key = bytes(entry.get(1, (2, b""))[1]).decode()
            w, v = entry.get(2, (2, b""))
            out.setdefault(fname, {})[key] = _value(vtype, w, v)
        elif repeated:
            items = out.setdefault(fname, [])
            if wire == 2 and ftype in ("int32", "int64", "bool"):
                # packed repeated scalars
                pos, data = 0, bytes(value)
                while pos < len(data):
                    item, pos = _varint(data, pos)
                    items.append(_scalar(ftype, 0, item))
            else:
                items.append(_value(ftype, wire, value))
        else:
            decoded = _value(ftype, wire, value)
            if inline and isinstance(decoded, dict):
                out.update(decoded)  # an embedded struct (json:",inline")
            elif decoded is None or (omit and ftype in _SCALARS and not decoded):
                out.pop(fname, None)  # zero time, or a zero omitempty scalar
            else:
                out[fname] = decoded
    return out


def _message_for(api_version: str, kind: str) -> str:
    group, _, version = api_version.rpartition("/")
    table = messages()
    package = _PACKAGES.get(group)
    candidates = []
    if package is not None:
        candidates.append(f"{package}.{version}.{kind}")
    candidates.append(f"{META}.{kind}")  # DeleteOptions & co travel with any group
    for name in candidates:
        if name in table:
            return name
    raise ProtobufError(f"no protobuf message known for {api_version} {kind}")


def decode(body: bytes) -> dict[str, Any]:
    """A ``k8s\\0``-framed ``runtime.Unknown`` -> the JSON object it carries."""
    if not body.startswith(MAGIC):
        raise ProtobufError("missing the k8s protobuf magic prefix")
    envelope = {n: v for n, _, v in _fields(body[len(MAGIC) :])}
    type_meta = {n: bytes(v).decode() for n, _, v in _fields(bytes(envelope.get(1, b"")))}
    api_version, kind = type_meta.get(1, ""), type_meta.get(2, "")
    encoding = bytes(envelope.get(3, b"")).decode()
    if encoding:
        raise ProtobufError(f"unsupported content encoding {encoding!r}")
    obj = decode_message(_message_for(api_version, kind), bytes(envelope.get(2, b"")))
    if not isinstance(obj, dict):
        raise ProtobufError(f"{kind} did not decode to an object")
    return {"apiVersion": api_version, "kind": kind, **obj}
