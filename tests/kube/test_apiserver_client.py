"""Unmodified kubernetes_asyncio against the emulator: watch resumption, 410, 409, 422."""

from __future__ import annotations

import asyncio
import json
from typing import Any

import aiohttp
import pytest
import pytest_asyncio
from kubernetes_asyncio import client, config, watch
from kubernetes_asyncio.client.rest import ApiException

pytestmark = [pytest.mark.kube, pytest.mark.asyncio(loop_scope="module")]

MERGE = "application/merge-patch+json"  # the client would pick json-patch for a dict
GROUP, VERSION, PLURAL, NS = "example.com", "v1", "gadgets", "default"
CRD = {
    "apiVersion": "apiextensions.k8s.io/v1",
    "kind": "CustomResourceDefinition",
    "metadata": {"name": f"{PLURAL}.{GROUP}"},
    "spec": {
        "group": GROUP,
        "scope": "Namespaced",
        "names": {"plural": PLURAL, "singular": "gadget", "kind": "Gadget"},
        "versions": [{
            "name": VERSION, "served": True, "storage": True,
            "subresources": {"status": {}},
            "schema": {"openAPIV3Schema": {
                "type": "object",
                "properties": {
                    "spec": {
                        "type": "object",
                        "required": ["size"],
                        "properties": {
                            "size": {"type": "integer", "minimum": 1, "maximum": 10},
                            "colour": {"type": "string", "pattern": "^[a-z]+$",
                                       "default": "grey"},
                            "extra": {"type": "object",
                                      "x-kubernetes-preserve-unknown-fields": True},
                        },
                    },
                    "status": {"type": "object",
                               "properties": {"phase": {"type": "string"}}},
                },
            }},
        }],
    },
}  # fmt: skip


def gadget(name: str, size: int = 1, **spec: Any) -> dict[str, Any]:
    return {
        "apiVersion": f"{GROUP}/{VERSION}",
        "kind": "Gadget",
        "metadata": {"name": name, "labels": {"app": "g"}},
        "spec": {"size": size, **spec},
    }


class Apis:
    def __init__(self, api_client: client.ApiClient) -> None:
        self.client = api_client
        self.core = client.CoreV1Api(api_client)
        self.custom = client.CustomObjectsApi(api_client)
        self.ext = client.ApiextensionsV1Api(api_client)

    async def create(self, body: dict[str, Any]) -> dict[str, Any]:
        return await self.custom.create_namespaced_custom_object(GROUP, VERSION, NS, PLURAL, body)

    async def events(self, rv: str, count: int) -> list[tuple[str, str, str]]:
        """``count`` events (type, name, resourceVersion) of a watch from ``rv``."""
        out = []
        w = watch.Watch()
        stream = w.stream(self.custom.list_namespaced_custom_object, GROUP, VERSION, NS, PLURAL,
                          resource_version=rv, timeout_seconds=30)  # fmt: skip
        async with asyncio.timeout(60):
            async for event in stream:
                meta = event["object"]["metadata"]
                out.append((event["type"], meta["name"], meta["resourceVersion"]))
                if len(out) == count:
                    break
        await w.close()
        return out


@pytest_asyncio.fixture(scope="module", loop_scope="module")
async def apis(kube_emulator):
    cfg = client.Configuration()
    await config.load_kube_config(config_file=str(kube_emulator.kubeconfig),
                                  client_configuration=cfg)  # fmt: skip
    api_client = client.ApiClient(configuration=cfg)
    a = Apis(api_client)
    crd = await a.ext.create_custom_resource_definition(CRD)
    assert crd.status.conditions[-1].type == "Established"
    yield a
    await api_client.close()


async def test_list_then_watch_resumes(apis):
    await apis.create(gadget("a"))
    listed = await apis.custom.list_namespaced_custom_object(GROUP, VERSION, NS, PLURAL)
    assert listed["kind"] == "GadgetList" and [i["metadata"]["name"] for i in listed["items"]] == [
        "a"
    ]
    rv = listed["metadata"]["resourceVersion"]
    await apis.create(gadget("b"))
    await apis.custom.patch_namespaced_custom_object(GROUP, VERSION, NS, PLURAL, "a",
                                                     {"spec": {"size": 2}}, _content_type=MERGE)  # fmt: skip
    await apis.custom.delete_namespaced_custom_object(GROUP, VERSION, NS, PLURAL, "b")
    events = await apis.events(rv, 3)
    assert [(t, n) for t, n, _ in events] == [("ADDED", "b"), ("MODIFIED", "a"), ("DELETED", "b")]
    versions = [int(v) for _, _, v in events]
    assert versions == sorted(versions) and versions[0] > int(rv)
    # Resuming from the first event's version replays exactly the rest.
    resumed = await apis.events(events[0][2], 2)
    assert resumed == events[1:]


async def test_expired_resource_version_is_410(apis, kube_emulator):
    listed = await apis.custom.list_namespaced_custom_object(GROUP, VERSION, NS, PLURAL)
    old = listed["metadata"]["resourceVersion"]
    await apis.create(gadget("c"))
    kube_emulator.emulator.store.compact()  # as etcd compaction does
    with pytest.raises(ApiException) as exc:
        await apis.events(old, 1)
    assert exc.value.status == 410
    # A fresh list gives a version that can be watched again.
    listed = await apis.custom.list_namespaced_custom_object(GROUP, VERSION, NS, PLURAL)
    await apis.custom.delete_namespaced_custom_object(GROUP, VERSION, NS, PLURAL, "c")
    assert [e[:2] for e in await apis.events(listed["metadata"]["resourceVersion"], 1)] == [
        ("DELETED", "c")
    ]


async def test_status_subresource(apis):
    obj = await apis.create(dict(gadget("s"), status={"phase": "ignored"}))
    assert "status" not in obj and obj["spec"]["colour"] == "grey"  # defaulted
    patched = await apis.custom.patch_namespaced_custom_object_status(
        GROUP,
        VERSION,
        NS,
        PLURAL,
        "s",
        {"status": {"phase": "Ready"}, "spec": {"size": 9}},
        _content_type=MERGE,
    )
    assert patched["status"] == {"phase": "Ready"} and patched["spec"]["size"] == 1
    assert patched["metadata"]["generation"] == 1  # status writes keep the generation
    main = await apis.custom.patch_namespaced_custom_object(
        GROUP,
        VERSION,
        NS,
        PLURAL,
        "s",
        {"status": {"phase": "Gone"}, "spec": {"size": 3}},
        _content_type=MERGE,
    )
    assert main["status"] == {"phase": "Ready"} and main["spec"]["size"] == 3
    assert main["metadata"]["generation"] == 2
    labelled = await apis.custom.patch_namespaced_custom_object(
        GROUP, VERSION, NS, PLURAL, "s", [{"op": "add", "path": "/metadata/labels/x", "value": "y"}]
    )
    assert labelled["metadata"]["generation"] == 2  # metadata-only change


async def test_stale_update_conflicts(apis):
    first = await apis.create(gadget("u"))
    first["spec"]["size"] = 2
    updated = await apis.custom.replace_namespaced_custom_object(
        GROUP, VERSION, NS, PLURAL, "u", first
    )
    assert updated["metadata"]["resourceVersion"] != first["metadata"]["resourceVersion"]
    first["spec"]["size"] = 3  # still carries the old resourceVersion
    with pytest.raises(ApiException) as exc:
        await apis.custom.replace_namespaced_custom_object(GROUP, VERSION, NS, PLURAL, "u", first)
    assert exc.value.status == 409
    assert '"reason": "Conflict"' in exc.value.body or '"reason":"Conflict"' in exc.value.body
    with pytest.raises(ApiException) as exc:
        await apis.create(gadget("u"))
    assert exc.value.status == 409 and "AlreadyExists" in exc.value.body


async def test_schema_validation_422(apis):
    with pytest.raises(ApiException) as exc:
        await apis.create(gadget("bad", size=11, colour="Red!"))
    assert exc.value.status == 422
    status = apis.client.sanitize_for_serialization(exc.value.body)
    assert '"reason": "Invalid"' in status
    assert "spec.size" in status and "spec.colour" in status
    with pytest.raises(ApiException) as exc:
        await apis.create({**gadget("bad2"), "spec": {"colour": "red"}})
    assert exc.value.status == 422 and "spec.size" in exc.value.body
    # Unknown fields are pruned, preserve-unknown-fields subtrees kept.
    obj = await apis.create(gadget("pruned", junk=1, extra={"any": {"thing": [1]}}))
    assert "junk" not in obj["spec"] and obj["spec"]["extra"] == {"any": {"thing": [1]}}


async def test_builtin_errors_and_selectors(apis):
    with pytest.raises(ApiException) as exc:
        await apis.core.read_namespaced_config_map("missing", NS)
    assert exc.value.status == 404 and '"reason": "NotFound"' in exc.value.body
    with pytest.raises(ApiException) as exc:
        await apis.core.create_namespaced_config_map("nope", {"metadata": {"name": "x"}})
    assert exc.value.status == 404  # namespace does not exist
    for name, tier in (("c1", "web"), ("c2", "db"), ("c3", "web")):
        await apis.core.create_namespaced_config_map(
            NS, {"metadata": {"name": name, "labels": {"tier": tier}}}
        )

    async def names(**kw: str) -> list[str]:
        listed = await apis.core.list_namespaced_config_map(NS, **kw)
        return [i.metadata.name for i in listed.items]

    assert await names(label_selector="tier=web") == ["c1", "c3"]
    assert await names(label_selector="tier notin (web)") == ["c2"]
    assert await names(label_selector="tier in (db,web),tier!=db") == ["c1", "c3"]
    assert await names(label_selector="!tier") == []
    assert await names(field_selector="metadata.name=c2") == ["c2"]
    removed = await apis.core.delete_collection_namespaced_config_map(NS, label_selector="tier=web")
    assert removed.kind == "ConfigMapList"
    assert await names() == ["c2"]


async def test_streaming_list_initial_events_bookmark(apis, kube_emulator):
    """client-go's WatchList: ADDED per object, then a BOOKMARK marking the initial end."""
    await apis.create(gadget("stream"))
    params = {"watch": "true", "sendInitialEvents": "true", "allowWatchBookmarks": "true",
              "resourceVersionMatch": "NotOlderThan", "timeoutSeconds": "30"}  # fmt: skip
    url = f"{kube_emulator.url}/apis/{GROUP}/{VERSION}/namespaces/{NS}/{PLURAL}"
    events = []
    async with aiohttp.ClientSession() as session, session.get(url, params=params) as resp:
        assert resp.status == 200 and resp.content_type == "application/json"
        async for line in resp.content:
            events.append(json.loads(line))
            if events[-1]["type"] == "BOOKMARK":
                break
    *added, mark = events
    assert {e["type"] for e in added} == {"ADDED"} and "stream" in [
        e["object"]["metadata"]["name"] for e in added
    ]
    assert all(e["object"]["kind"] == "Gadget" for e in added)
    assert mark["object"]["kind"] == "Gadget"
    assert mark["object"]["metadata"]["annotations"] == {"k8s.io/initial-events-end": "true"}


async def test_crd_deletion_removes_api(apis):
    crd = json.loads(json.dumps(CRD).replace("gadget", "gizmo").replace("Gadget", "Gizmo"))
    await apis.ext.create_custom_resource_definition(crd)
    await apis.custom.create_namespaced_custom_object(
        GROUP, VERSION, NS, "gizmos", dict(gadget("g1"), kind="Gizmo")
    )
    resources = await apis.custom.get_api_resources(GROUP, VERSION)
    assert "gizmos" in [r.name for r in resources.resources]
    await apis.ext.delete_custom_resource_definition("gizmos.example.com")
    with pytest.raises(ApiException) as exc:
        await apis.custom.list_namespaced_custom_object(GROUP, VERSION, NS, "gizmos")
    assert exc.value.status == 404
    resources = await apis.custom.get_api_resources(GROUP, VERSION)
    assert "gizmos" not in [r.name for r in resources.resources]


async def test_env_entries_and_containers_need_names(apis):
    """As a real API server: a nameless env entry is refused, not stored for the kubelet."""
    container = {"name": "c", "image": "x", "env": [{"value": "1"}]}
    with pytest.raises(ApiException) as exc:
        await apis.core.create_namespaced_pod(
            NS, {"metadata": {"name": "noname-env"}, "spec": {"containers": [container]}}
        )
    assert exc.value.status == 422
    assert "spec.containers[0].env[0].name" in exc.value.body
    deployment = {
        "metadata": {"name": "noname-init"},
        "spec": {
            "selector": {"matchLabels": {"app": "a"}},
            "template": {
                "metadata": {"labels": {"app": "a"}},
                "spec": {
                    "containers": [{"name": "c", "image": "x"}],
                    "initContainers": [{"image": "x"}],
                },  # fmt: skip
            },
        },
    }
    with pytest.raises(ApiException) as exc:
        await client.AppsV1Api(apis.client).create_namespaced_deployment(NS, deployment)
    assert exc.value.status == 422
    assert "spec.template.spec.initContainers[0].name" in exc.value.body
