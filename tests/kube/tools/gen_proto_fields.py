"""Regenerate ``apiserver/proto/fields.txt`` from the upstream ``generated.proto`` files.

Usage: ``python tests/kube/tools/gen_proto_fields.py API_DIR APIMACHINERY_DIR > fields.txt``
where the two directories are checkouts of ``kubernetes/api`` and
``kubernetes/apimachinery``. Only the wire facts are kept: for each message its
field numbers, names, labels and types (one message per line), plus what the Go
struct tags (``types.go``) add: the JSON name, ``^`` for a field inlined into its
parent in JSON (``json:",inline"``), and ``~`` for a non-pointer ``omitempty`` field
(always on the wire, but omitted from JSON when zero).
"""

from __future__ import annotations

import re
import sys
from pathlib import Path

API_PACKAGES = [
    "core/v1", "apps/v1", "batch/v1", "rbac/v1", "networking/v1", "policy/v1",
    "autoscaling/v1", "autoscaling/v2", "authentication/v1", "authorization/v1",
    "coordination/v1", "discovery/v1", "events/v1", "scheduling/v1", "storage/v1",
]  # fmt: skip
MACHINERY_PACKAGES = [
    "pkg/api/resource", "pkg/apis/meta/v1", "pkg/runtime", "pkg/runtime/schema",
    "pkg/util/intstr",
]  # fmt: skip
FIELD = re.compile(
    r"^\s*(optional|repeated|required)?\s*(map<\s*\w+\s*,\s*[\w.]+\s*>|[\w.]+)\s+(\w+)\s*=\s*(\d+)"
)


GO_FIELD = re.compile(r'^\s+(?:(\w+)\s+)?(\*?[\w.\[\]*]+)\s+`json:"([^"]*)"[^`]*protobuf:"([^"]*)"')

# (proto message, proto field name) -> (json name, inline, zero omitted)
Tags = dict[tuple[str, str], tuple[str, bool, bool]]


def go_tags(package: str, text: str) -> Tags:
    tags: Tags = {}
    struct = None
    for line in text.splitlines():
        m = re.match(r"^type (\w+) struct \{", line)
        if m:
            struct = m.group(1)
            continue
        if line.startswith("}"):
            struct = None
            continue
        f = GO_FIELD.match(line) if struct else None
        if not f:
            continue
        name, gotype, json_tag, pb = f.groups()
        pname = re.search(r"name=(\w+)", pb)
        if not pname:
            continue
        jname, _, opts = json_tag.partition(",")
        inline = jname == "" and (name is None or "inline" in opts or json_tag == "")
        pointer = gotype.startswith("*") or gotype.startswith("[]") or gotype.startswith("map")
        tags[(f"{package}.{struct}", pname.group(1))] = (
            jname or pname.group(1),
            inline,
            "omitempty" in opts and not pointer,
        )
    return tags


def parse(text: str, tags: Tags) -> list[str]:
    text = re.sub(r"//[^\n]*", "", text)
    text = re.sub(r"/\*.*?\*/", "", text, flags=re.S)
    package = re.search(r"^package ([\w.]+);", text, re.M).group(1)  # type: ignore[union-attr]
    lines = []
    for m in re.finditer(r"message (\w+) \{([^}]*)\}", text):
        fields = []
        for line in m.group(2).splitlines():
            f = FIELD.match(line)
            if not f:
                continue
            label, ftype, name, num = f.groups()
            ftype = ftype.replace(" ", "")
            if ftype.startswith("map<"):
                key, value = ftype[4:-1].split(",")
                ftype = f"map:{key}:{value}"
            if label == "repeated":
                ftype = "*" + ftype
            jname, inline, omit = tags.get((f"{package}.{m.group(1)}", name), (name, False, False))
            flags = ("^" if inline else "") + ("~" if omit else "")
            fields.append(f"{num}={flags}{jname}={ftype}")
        lines.append(f"{package}.{m.group(1)} " + " ".join(fields))
    return lines


def main() -> None:
    api, machinery = Path(sys.argv[1]), Path(sys.argv[2])
    out = []
    for root, pkgs in ((api, API_PACKAGES), (machinery, MACHINERY_PACKAGES)):
        for pkg in pkgs:
            proto = (root / pkg / "generated.proto").read_text()
            package = re.search(r"^package ([\w.]+);", proto, re.M).group(1)  # type: ignore[union-attr]
            tags: Tags = {}
            for go in sorted((root / pkg).glob("types*.go")):
                tags.update(go_tags(package, go.read_text()))
            out += parse(proto, tags)
    print("\n".join(out))


if __name__ == "__main__":
    main()
