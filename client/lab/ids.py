"""Gateway cluster names <-> the ids dask-labextension 7.0.0 routes accept.

Its routes match ids of five word groups joined by dashes (a uuid's shape),
while gateway names are a hex uuid, ``<namespace>.<hex>`` or any DNS label.
The mapping is stateless and reversible, so ids survive server restarts.
"""

from __future__ import annotations

import re

__all__ = ["ID_PATTERN", "id_from_name", "name_from_id"]

#: what dask-labextension 7.0.0 accepts as a cluster id in its URLs
ID_PATTERN = r"\w+-\w+-\w+-\w+-\w+"

_HEX32 = re.compile(r"[0-9a-f]{32}")
_UUID = re.compile(r"([0-9a-f]{8})-([0-9a-f]{4})-([0-9a-f]{4})-([0-9a-f]{4})-([0-9a-f]{12})")
# any other name: escaped into one word group, then a fixed tail of four groups
_TAIL = "-n-a-m-e"
_ESCAPES = {"_": "__", "-": "_d", ".": "_p"}
_UNESCAPE = re.compile(r"_(.)")
_UNESCAPES = {"_": "_", "d": "-", "p": "."}


def id_from_name(name: str) -> str:
    """The labextension id of a gateway cluster name (a uuid for hex names)."""
    if _HEX32.fullmatch(name):
        return f"{name[:8]}-{name[8:12]}-{name[12:16]}-{name[16:20]}-{name[20:]}"
    if not name:
        raise ValueError("a cluster name cannot be empty")
    return "".join(_ESCAPES.get(ch, ch) for ch in name) + _TAIL


def name_from_id(cluster_id: str) -> str | None:
    """The gateway cluster name of an id made by ``id_from_name``; None if it is not one."""
    match = _UUID.fullmatch(cluster_id)
    if match:
        return "".join(match.groups())
    if not cluster_id.endswith(_TAIL) or len(cluster_id) == len(_TAIL):
        return None
    escaped = cluster_id[: -len(_TAIL)]
    if not re.fullmatch(r"(?:[0-9a-zA-Z]|_[_dp])+", escaped):
        return None
    return _UNESCAPE.sub(lambda m: _UNESCAPES[m.group(1)], escaped)
