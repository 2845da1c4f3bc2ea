"""The pure builders: golden manifests, schema validation of every kind, merge semantics.

The golden files in ``golden/`` were written once from these builders and
reviewed by hand; a diff here is a behaviour change to look at, not noise to
regenerate away.
"""

from __future__ import annotations

import asyncio
import copy
import dataclasses
import json
import time
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import jsonschema
import kubernetes_validate
import pytest
import yaml
from kubernetes_asyncio import client, config

from jhub_gateway import crd
from jhub_gateway.controller.builders import (
    ClusterSpec,
    build_drop_credentials_middleware,
    build_forward_auth_middleware,
    build_ingressroute,
    build_ingressroute_tcp,
    build_scheduler_pod,
    build_secret,
    build_service,
    build_strip_prefix_middleware,
    build_worker_pod,
    merge_json_objects,
    scheduler_pod_name,
    selector_string,
    worker_selector,
)
from jhub_gateway.controller.builders.warm import (
    build_claim_mark,
    build_claim_patch,
    build_warm_pod,
    build_warm_secret,
    claim_args,
    is_warmable,
    scheduler_profile,
)
from jhub_gateway.crd import cluster_object
from jhub_gateway.tls import new_keypair
from tests.kube.apiserver import launch
from tests.kube.apiserver.schema import prune

GOLDEN = Path(__file__).parent / "golden"
TRAEFIK_CRDS = Path(__file__).parents[2] / "helm" / "jhub-gateway" / "crds" / "traefik.yaml"

# A spec exercising every branch: odd user name, prefix with a trailing slash,
# cross-namespace auth, fractional cores, explicit limits, a user env var that
# tries to override ours, extras that must be merged (lists appended), and extra
# labels, one of which tries to move the worker pods to another instance.
SPEC = ClusterSpec(
    name="0123456789abcdef0123456789abcdef",
    namespace="team-a",
    username="Alice Smith",
    uid="5f1d7c9e-0000-4000-8000-000000000001",
    instance="jhub-gateway",
    api_url="http://api-jhub-gateway.gateway:8000/api",
    dashboard_auth_middleware="jhub-gateway-dashboard-auth",
    dashboard_auth_middleware_namespace="gateway",
    image="ghcr.io/example/dask:2026.8.0",
    image_pull_policy="IfNotPresent",
    image_pull_secrets=("regcred",),
    environment={"EXTRA_PIP_PACKAGES": "xarray", "DASK_GATEWAY_CLUSTER_NAME": "spoofed"},
    scheduler_cores=0.5,
    scheduler_memory=1 * 2**30,
    worker_cores=1.5,
    worker_cores_limit=2.0,
    worker_memory=4 * 2**30,
    worker_memory_limit=6 * 2**30,
    idle_timeout=1800.0,
    adaptive_period=3.0,
    scheduler_extra_pod_config={"nodeSelector": {"pool": "dask"}},
    worker_extra_pod_config={"tolerations": [{"key": "dask", "operator": "Exists"}]},
    worker_extra_container_config={"env": [{"name": "MALLOC_TRIM_THRESHOLD_", "value": "0"}]},
    scheduler_extra_pod_labels={"team": "geo"},
    scheduler_extra_pod_annotations={"prometheus.io/scrape": "true"},
    worker_extra_pod_labels={"team": "geo", "gateway.dask.org/instance": "elsewhere"},
    worker_extra_pod_annotations={"cluster-autoscaler.kubernetes.io/safe-to-evict": "false"},
    scheduler_address="10.1.2.3:8786",
    route_prefix="/services/dask-gateway/",
)
PEM_CERT = "-----BEGIN CERTIFICATE-----\nZmFrZQ==\n-----END CERTIFICATE-----\n"
PEM_KEY = "-----BEGIN PRIVATE KEY-----\nZmFrZQ==\n-----END PRIVATE KEY-----\n"


def _secret(spec: ClusterSpec) -> dict[str, Any]:
    return build_secret(spec, tls_cert=PEM_CERT, tls_key=PEM_KEY, api_token="t0ken")


WARM_OWNER = {"apiVersion": "v1", "kind": "ConfigMap", "name": "jhub-gateway-controller",
              "uid": "5f1d7c9e-0000-4000-8000-00000000c0f1"}  # fmt: skip
WARM_NAME = "dask-warm-0a1b2c3d4e"


def _warm_pod(spec: ClusterSpec) -> dict[str, Any]:
    return build_warm_pod(spec, name=WARM_NAME, profile=scheduler_profile(spec), owner=WARM_OWNER)


def _warm_secret(spec: ClusterSpec) -> dict[str, Any]:
    return build_warm_secret(spec, name=WARM_NAME, profile=scheduler_profile(spec),
                             tls_cert=PEM_CERT, tls_key=PEM_KEY, owner=WARM_OWNER)  # fmt: skip


BUILDERS: dict[str, Callable[[ClusterSpec], dict[str, Any]]] = {
    "secret": _secret,
    "scheduler-pod": build_scheduler_pod,
    "worker-pod": build_worker_pod,
    "warm-pod": _warm_pod,
    "warm-secret": _warm_secret,
    "service": build_service,
    "ingressroute": build_ingressroute,
    "ingressroutetcp": build_ingressroute_tcp,
    "middleware": lambda spec: build_strip_prefix_middleware(
        spec.instance, spec.namespace, spec.route_prefix
    ),
    "middleware-auth": lambda spec: build_forward_auth_middleware(
        spec.instance, spec.namespace, "http://api-jhub-gateway.gateway:8000/api/v1/dashboard-auth"
    ),
    "middleware-drop-credentials": lambda spec: build_drop_credentials_middleware(
        spec.instance, spec.namespace
    ),
}
CORE = ("secret", "scheduler-pod", "worker-pod", "service", "warm-pod", "warm-secret")
TRAEFIK = (
    "ingressroute",
    "ingressroutetcp",
    "middleware",
    "middleware-auth",
    "middleware-drop-credentials",
)


@pytest.mark.parametrize("kind", sorted(BUILDERS))
def test_golden(kind: str) -> None:
    expected = json.loads((GOLDEN / f"{kind}.json").read_text())
    assert BUILDERS[kind](SPEC) == expected


@pytest.mark.parametrize("kind", CORE)
def test_core_kinds_validate_strictly(kind: str) -> None:
    version = kubernetes_validate.latest_version()
    kubernetes_validate.validate(BUILDERS[kind](SPEC), version, strict=True)


def test_strict_validation_catches_upstreams_target_port_typo() -> None:
    # The check above must be able to fail: upstream shipped "target_port".
    service = build_service(SPEC)
    service["spec"]["ports"][0]["target_port"] = service["spec"]["ports"][0].pop("targetPort")
    with pytest.raises(kubernetes_validate.ValidationError):
        kubernetes_validate.validate(service, kubernetes_validate.latest_version(), strict=True)


def _traefik_schemas() -> dict[str, dict[str, Any]]:
    return {
        d["spec"]["names"]["kind"]: d["spec"]["versions"][0]["schema"]["openAPIV3Schema"]
        for d in yaml.safe_load_all(TRAEFIK_CRDS.read_text())
    }


@pytest.mark.parametrize("kind", TRAEFIK)
def test_traefik_kinds_match_our_traefik_crds(kind: str) -> None:
    obj = BUILDERS[kind](SPEC)
    schema = _traefik_schemas()[obj["kind"]]
    jsonschema.Draft4Validator(schema).validate(obj)
    removed: list[str] = []
    prune(schema, obj, root=True, removed=removed)
    assert removed == []  # an API server would silently drop these (typos)


def test_service_targets_the_scheduler_containers_named_ports() -> None:
    pod, service = build_scheduler_pod(SPEC), build_service(SPEC)
    named = {p["name"]: p["containerPort"] for p in pod["spec"]["containers"][0]["ports"]}
    for port in service["spec"]["ports"]:
        assert named[port["targetPort"]] == port["port"]
    labels = pod["metadata"]["labels"]
    assert service["spec"]["selector"].items() <= labels.items()
    probe = pod["spec"]["containers"][0]["readinessProbe"]["httpGet"]
    assert named[probe["port"]] == 8788


def test_our_env_wins_and_extras_are_appended() -> None:
    container = build_worker_pod(SPEC)["spec"]["containers"][0]
    env = [(e["name"], e.get("value")) for e in container["env"]]
    assert env[0][0] == "POD_IP"  # first, so later values and args may use $(POD_IP)
    assert ("DASK_GATEWAY_CLUSTER_NAME", "team-a.0123456789abcdef0123456789abcdef") in env
    assert ("DASK_GATEWAY_CLUSTER_NAME", "spoofed") not in env
    assert env[-1] == ("MALLOC_TRIM_THRESHOLD_", "0")
    assert len({n for n, _ in env}) == len(env)


def _worker_flags(spec: ClusterSpec) -> dict[str, Any]:
    """What distributed's own ``dask worker`` CLI makes of a worker pod's args."""
    from distributed.cli.dask_worker import main as dask_worker

    container = build_worker_pod(spec)["spec"]["containers"][0]
    args = container["args"]
    assert args[:2] == ["dask", "worker"]
    return dask_worker.make_context("dask worker", args[2:], resilient_parsing=True).params


def test_workers_run_without_a_nanny_but_with_the_environment_it_would_set() -> None:
    plain = dataclasses.replace(SPEC, worker_extra_container_config={},
                                environment={"OMP_NUM_THREADS": "4"})  # fmt: skip
    assert _worker_flags(plain)["nanny"] is False
    env = {
        e["name"]: e.get("value") for e in build_worker_pod(plain)["spec"]["containers"][0]["env"]
    }
    # the same hash seed on every worker (dask bag shuffles of strings need it) ...
    assert env["PYTHONHASHSEED"] == "6640" and env["MALLOC_TRIM_THRESHOLD_"] == "65536"
    assert env["OMP_NUM_THREADS"] == "4"  # ... and the user's own settings win


def test_a_nanny_comes_back_for_all_clusters_or_for_one() -> None:
    assert _worker_flags(dataclasses.replace(SPEC, worker_nanny=True))["nanny"] is True
    # one cluster: KubeClusterConfig.worker_extra_container_config, args appended as upstream
    one = dataclasses.replace(SPEC, worker_extra_container_config={"args": ["--nanny"]})
    flags = _worker_flags(one)
    assert flags["nanny"] is True and flags["nanny_port"] == "8788"


def test_extra_labels_are_added_but_ours_win() -> None:
    worker, scheduler = build_worker_pod(SPEC), build_scheduler_pod(SPEC)
    assert worker["metadata"]["labels"]["team"] == "geo"
    assert worker["metadata"]["labels"]["gateway.dask.org/instance"] == "jhub-gateway"
    assert (
        worker_selector("jhub-gateway", SPEC.name).items() <= worker["metadata"]["labels"].items()
    )
    assert worker["metadata"]["annotations"] == {
        "cluster-autoscaler.kubernetes.io/safe-to-evict": "false"
    }
    assert scheduler["metadata"]["annotations"] == {"prometheus.io/scrape": "true"}
    plain = build_worker_pod(dataclasses.replace(SPEC, worker_extra_pod_annotations={}))
    assert "annotations" not in plain["metadata"]


@pytest.mark.parametrize(
    "field, value, needle",
    [
        ("worker_extra_pod_labels", {"bad key": "x"}, "name must be"),
        ("worker_extra_pod_labels", {"Not_A.Domain/x": "x"}, "prefix"),
        ("scheduler_extra_pod_labels", {"team": "has space"}, "label value"),
        ("scheduler_extra_pod_labels", {"team": "x" * 64}, "label value"),
        ("worker_extra_pod_annotations", {"a/b/c": "any value is fine"}, "prefix"),
        ("worker_extra_pod_annotations", {"ok": 3}, "must be a string"),
    ],
)
def test_invalid_extra_metadata_is_refused(field: str, value: Any, needle: str) -> None:
    with pytest.raises(ValueError, match=needle):
        dataclasses.replace(SPEC, **{field: value})


def test_annotation_values_may_be_any_string() -> None:
    spec = dataclasses.replace(SPEC, worker_extra_pod_annotations={"note": "free text: 100%"})
    assert build_worker_pod(spec)["metadata"]["annotations"] == {"note": "free text: 100%"}


def test_worker_needs_the_scheduler_address() -> None:
    with pytest.raises(ValueError, match="scheduler_address"):
        build_worker_pod(dataclasses.replace(SPEC, scheduler_address=""))


def test_builders_are_deterministic_and_do_not_share_state() -> None:
    for build in BUILDERS.values():
        first = build(SPEC)
        first["metadata"]["labels"]["mutated"] = "yes"
        assert build(SPEC) != first
        assert "mutated" not in build(SPEC)["metadata"]["labels"]
    assert dict(SPEC.worker_extra_pod_config) == {
        "tolerations": [{"key": "dask", "operator": "Exists"}]
    }


def test_merge_json_objects_merges_appends_and_never_mutates() -> None:
    base = {"a": {"x": 1, "l": [1]}, "keep": [{"k": 1}], "s": "old"}
    extra = {"a": {"y": 2, "l": [2]}, "s": "new", "n": {"deep": [3]}}
    base_before, extra_before = copy.deepcopy(base), copy.deepcopy(extra)
    merged = merge_json_objects(base, extra)
    assert merged == {
        "a": {"x": 1, "y": 2, "l": [1, 2]},
        "keep": [{"k": 1}],
        "s": "new",
        "n": {"deep": [3]},
    }
    assert base == base_before and extra == extra_before
    merged["keep"][0]["k"] = 99
    merged["n"]["deep"].append(4)
    assert base == base_before and extra == extra_before


def test_from_resource_maps_the_crd_config() -> None:
    obj = cluster_object(
        "c1",
        "team-b",
        {
            "username": "bob",
            "config": {
                "image": "img:1",
                "workerCores": 2,
                "workerThreads": 3,
                "imagePullSecrets": [{"name": "pull"}],
                "maxLifetime": 60,  # a controller policy: not a builder input
                "workerExtraPodConfig": {"priorityClassName": "low"},
                "workerExtraPodLabels": {"team": "geo"},
                "schedulerExtraPodAnnotations": {"note": "n"},
            },
        },
    )
    obj["metadata"]["uid"] = "uid-1"
    spec = ClusterSpec.from_resource(
        obj, instance="gw", api_url="http://api/api", dashboard_auth_middleware="auth"
    )
    assert (spec.name, spec.namespace, spec.uid, spec.username) == ("c1", "team-b", "uid-1", "bob")
    assert (spec.image, spec.worker_cores, spec.threads) == ("img:1", 2, 3)
    assert spec.image_pull_secrets == ("pull",)
    assert spec.worker_extra_pod_config == {"priorityClassName": "low"}
    assert spec.worker_extra_pod_labels == {"team": "geo"}
    assert spec.scheduler_extra_pod_annotations == {"note": "n"}
    assert spec.scheduler_extra_pod_labels == {} and spec.worker_extra_pod_annotations == {}
    assert spec.public_name == "team-b.c1"


# -- warm scheduler pods ----------------------------------------------------------------


def test_the_profile_ignores_what_differs_per_cluster() -> None:
    other = dataclasses.replace(
        SPEC, name="fedcba9876543210fedcba9876543210", username="Bob", uid="other-uid",
        idle_timeout=60.0, adaptive_period=1.0, scheduler_address="",
    )  # fmt: skip
    assert scheduler_profile(other) == scheduler_profile(SPEC)
    assert claim_args(other) != claim_args(SPEC)  # delivered by the claim instead
    for change in (
        {"scheduler_memory": 2 * 2**30},
        {"image": "ghcr.io/example/dask:other"},
        {"environment": {"EXTRA_PIP_PACKAGES": "zarr"}},
        {"scheduler_extra_pod_config": {"nodeSelector": {"pool": "other"}}},
        {"scheduler_extra_pod_labels": {"team": "ocean"}},
        {"namespace": "team-b"},
    ):
        assert scheduler_profile(dataclasses.replace(SPEC, **change)) != scheduler_profile(SPEC)
    assert len(scheduler_profile(SPEC)) == 20


def test_a_claimed_warm_pod_looks_like_the_cold_pod() -> None:
    """Labels, annotations, owner and args: what the Service, reconcile and GC go by."""
    cold, warm = build_scheduler_pod(SPEC), _warm_pod(SPEC)
    warm["metadata"]["resourceVersion"] = "7"
    mark = build_claim_mark(SPEC, warm, "2026-12-03T10:00:00Z")
    assert mark["metadata"]["resourceVersion"] == "7"  # conditional: never claimed twice
    patch = build_claim_patch(SPEC, warm)["metadata"]
    labels = {k: v for k, v in {**warm["metadata"]["labels"], **patch["labels"]}.items()
              if v is not None}  # fmt: skip
    assert labels == cold["metadata"]["labels"]
    assert patch["annotations"] == cold["metadata"]["annotations"]
    assert patch["ownerReferences"] == cold["metadata"]["ownerReferences"]
    cold_args = cold["spec"]["containers"][0]["args"]
    assert cold_args == [*SPEC.scheduler_cmd, *claim_args(SPEC)]
    # the warm pod holds nothing of a cluster: no cluster name, token or TLS paths
    env = {e["name"] for e in warm["spec"]["containers"][0]["env"]}
    assert not env & {"DASK_GATEWAY_CLUSTER_NAME", "DASK_GATEWAY_API_TOKEN"}
    assert not any(n.startswith("DASK_DISTRIBUTED__COMM__TLS") for n in env)
    assert "DASK_GATEWAY_API_URL" in env and "EXTRA_PIP_PACKAGES" in env


def test_only_known_scheduler_commands_are_warmable() -> None:
    assert is_warmable(SPEC)
    assert not is_warmable(dataclasses.replace(SPEC, scheduler_cmd=("my-scheduler",)))
    replaced = dataclasses.replace(SPEC, scheduler_extra_container_config={"command": ["sh"]})
    assert not is_warmable(replaced)


def test_worker_selector_string_is_stable() -> None:
    assert selector_string(worker_selector("gw", "c1")) == (
        "app.kubernetes.io/component=dask-worker,app.kubernetes.io/instance=gw,"
        "app.kubernetes.io/name=dask-gateway,gateway.dask.org/instance=gw,"
        "jhubgateway.dask.org/cluster=c1"
    )


# -- the built pods really run (emulator + process kubelet) ---------------------------


async def _until(check: Callable[[], Awaitable[Any]], what: str, timeout: float = 90) -> Any:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        result = await check()
        if result:
            return result
        await asyncio.sleep(0.5)
    raise TimeoutError(f"timed out waiting for {what}")


@pytest.mark.kube
async def test_built_objects_run_a_tls_cluster_and_are_garbage_collected(tmp_path: Path) -> None:
    """Secret + scheduler Pod + Service + a worker Pod, created as built, form a cluster.

    Catches what schemas cannot: CLI flags, $(POD_IP) expansion, mounted
    credential paths, the readiness probe, and cascading delete via the owner.
    """
    kube = await launch(tmp_path, kubelet=True)
    try:
        cfg = client.Configuration()
        await config.load_kube_config(config_file=str(kube.kubeconfig), client_configuration=cfg)
        async with client.ApiClient(configuration=cfg) as api_client:
            ext = client.ApiextensionsV1Api(api_client)
            custom, core = client.CustomObjectsApi(api_client), client.CoreV1Api(api_client)
            await ext.create_custom_resource_definition(crd.crd_manifest())
            body = cluster_object("c1", "default", {"username": "Alice Smith"})
            obj = await custom.create_namespaced_custom_object(
                crd.GROUP, crd.VERSION, "default", crd.PLURAL, body
            )
            spec = ClusterSpec.from_resource(
                obj, instance="gw", api_url="http://127.0.0.1:9/api", dashboard_auth_middleware="a"
            )
            cert, key = new_keypair(spec.public_name)
            secret = build_secret(spec, tls_cert=cert, tls_key=key, api_token="token")
            await core.create_namespaced_secret("default", secret)
            await core.create_namespaced_pod("default", build_scheduler_pod(spec))
            await core.create_namespaced_service("default", build_service(spec))

            async def scheduler_ready() -> Any:
                pod = await core.read_namespaced_pod(scheduler_pod_name("c1"), "default")
                ready = any(
                    c.type == "Ready" and c.status == "True" for c in pod.status.conditions or []
                )
                return pod if ready else None

            pod = await _until(scheduler_ready, "scheduler readiness (GET :8788/api/health)")
            worker_spec = dataclasses.replace(spec, scheduler_address=f"{pod.status.pod_ip}:8786")
            worker = await core.create_namespaced_pod("default", build_worker_pod(worker_spec))

            async def registered() -> bool:
                log = await core.read_namespaced_pod_log(scheduler_pod_name("c1"), "default")
                return f"name: {worker.metadata.name}" in log

            await _until(registered, "the worker to register with the scheduler over TLS")
            await custom.delete_namespaced_custom_object(
                crd.GROUP, crd.VERSION, "default", crd.PLURAL, "c1"
            )

            async def collected() -> bool:
                pods = await core.list_namespaced_pod("default")
                secrets = await core.list_namespaced_secret("default")
                return not pods.items and not secrets.items

            await _until(collected, "ownerReference garbage collection")
    finally:
        await kube.stop()


def test_a_clusters_own_commands_win_over_the_controllers() -> None:
    """KubeClusterConfig.scheduler_cmd/worker_cmd (as upstream honours them) reach the pods;
    without them the controller's KubeController commands apply."""
    settings = {
        "instance": "gw",
        "api_url": "http://api/api",
        "dashboard_auth_middleware": "auth",
        "scheduler_cmd": ("/opt/bin/dask", "scheduler"),
        "worker_cmd": ("/opt/bin/dask", "worker"),
    }
    custom = cluster_object(
        "c1",
        "team-b",
        {"username": "bob", "config": {"workerCmd": ["dask-cuda-worker"]}},
    )
    custom["metadata"]["uid"] = "uid-1"
    spec = ClusterSpec.from_resource(custom, **settings)
    assert spec.worker_cmd == ("dask-cuda-worker",)
    assert spec.scheduler_cmd == ("/opt/bin/dask", "scheduler")  # not set: the controller's
    spec = dataclasses.replace(spec, scheduler_address="10.0.0.5:8786")
    worker = build_worker_pod(spec)
    assert worker["spec"]["containers"][0]["args"][0] == "dask-cuda-worker"
    plain = cluster_object("c2", "team-b", {"username": "bob", "config": {}})
    plain["metadata"]["uid"] = "uid-2"
    assert ClusterSpec.from_resource(plain, **settings).worker_cmd == ("/opt/bin/dask", "worker")
