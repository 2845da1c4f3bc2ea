"""batch/v1 Job and CronJob with their controllers; HPA, PDB, NetworkPolicy and Ingress stored.

Jobs run as real processes on the process kubelet. CronJob schedules are
driven by moving the batch controller's clock (``emulator.batch.clock``) to
just after the next schedule time, so no test waits for a wall-clock minute.
"""

from __future__ import annotations

import datetime
import time
from collections.abc import AsyncIterator
from typing import Any

import pytest
import pytest_asyncio

from tests.kube.apiserver import KubeCluster
from tests.kube.apiserver.cron import CronError, parse
from tests.kube.kubelet.api import ApiError, RawApi
from tests.polling import until

pytestmark = [pytest.mark.kube, pytest.mark.asyncio(loop_scope="module")]

NS = "default"
JOBS = f"/apis/batch/v1/namespaces/{NS}/jobs"
CRONJOBS = f"/apis/batch/v1/namespaces/{NS}/cronjobs"
PODS = f"/api/v1/namespaces/{NS}/pods"


@pytest_asyncio.fixture(scope="module", loop_scope="module")
async def api(kube_cluster: KubeCluster) -> AsyncIterator[RawApi]:
    raw = await RawApi.from_kubeconfig(kube_cluster.kubeconfig)
    try:
        yield raw
    finally:
        await raw.close()


def job(name: str, script: str, **spec: Any) -> dict[str, Any]:
    return {"apiVersion": "batch/v1", "kind": "Job", "metadata": {"name": name},
            "spec": {"template": {"spec": {"restartPolicy": "Never", "containers": [
                {"name": "main", "image": "python:3", "command": ["python3", "-c", script]}]}},
                     **spec}}  # fmt: skip


def cronjob(name: str, schedule: str, script: str, **spec: Any) -> dict[str, Any]:
    template = job("x", script)["spec"]
    return {"apiVersion": "batch/v1", "kind": "CronJob", "metadata": {"name": name},
            "spec": {"schedule": schedule, "jobTemplate": {"metadata": {"labels": {"cron": name}},
                                                           "spec": template}, **spec}}  # fmt: skip


def condition(obj: dict[str, Any], ctype: str) -> dict[str, Any] | None:
    for cond in (obj.get("status") or {}).get("conditions") or []:
        if cond["type"] == ctype and cond["status"] == "True":
            return dict(cond)
    return None


async def finished(api: RawApi, name: str, ctype: str) -> dict[str, Any]:
    async def done() -> dict[str, Any] | None:
        try:
            obj = await api.request("GET", f"{JOBS}/{name}")
        except ApiError as exc:
            if exc.status != 404:  # not created yet
                raise
            return None
        return obj if condition(obj, ctype) else None

    return dict(await until(done, what=f"job {name} {ctype}"))


async def invalid(api: RawApi, path: str, body: dict[str, Any]) -> dict[str, Any]:
    with pytest.raises(ApiError) as exc:
        await api.request("POST", path, body=body)
    assert exc.value.status == 422, exc.value.body
    return dict(exc.value.body)


# -- served kinds ---------------------------------------------------------------------


KINDS = [
    ("batch/v1", "jobs", "Job"),
    ("batch/v1", "cronjobs", "CronJob"),
    ("autoscaling/v2", "horizontalpodautoscalers", "HorizontalPodAutoscaler"),
    ("policy/v1", "poddisruptionbudgets", "PodDisruptionBudget"),
    ("networking.k8s.io/v1", "networkpolicies", "NetworkPolicy"),
    ("networking.k8s.io/v1", "ingresses", "Ingress"),
]


async def test_kinds_in_discovery_and_openapi(api: RawApi) -> None:
    v2 = await api.request("GET", "/openapi/v2")
    for gv, plural, kind in KINDS:
        listing = await api.request("GET", f"/apis/{gv}")
        assert kind in {r["kind"] for r in listing["resources"] if r["name"] == plural}
        group, version = gv.split("/")
        v3 = await api.request("GET", f"/openapi/v3/apis/{gv}")
        schemas = v3["components"]["schemas"]
        names = [n for n, s in schemas.items()
                 if {"group": group, "version": version, "kind": kind}
                 in s.get("x-kubernetes-group-version-kind", [])]  # fmt: skip
        assert names, f"{kind} not in /openapi/v3/apis/{gv}"
        assert names[0] in v2["definitions"]
    index = await api.request("GET", "/openapi/v3")
    assert "apis/batch/v1" in index["paths"] and "apis/autoscaling/v2" in index["paths"]


# -- Job ----------------------------------------------------------------------------


async def test_job_runs_its_pod_to_completion(api: RawApi) -> None:
    created = await api.request("POST", JOBS, body=job("once", "print('done')"))
    spec = created["spec"]
    assert (spec["completions"], spec["parallelism"], spec["backoffLimit"]) == (1, 1, 6)
    uid = created["metadata"]["uid"]
    assert spec["selector"] == {"matchLabels": {"batch.kubernetes.io/controller-uid": uid}}
    done = await finished(api, "once", "Complete")
    status = done["status"]
    assert status["succeeded"] == 1 and "active" not in status and "failed" not in status
    assert status["completionTime"] >= status["startTime"]
    assert condition(done, "SuccessCriteriaMet")["reason"] == "CompletionsReached"  # type: ignore[index]
    pods = await api.request("GET", PODS, query={"labelSelector": "job-name=once"})
    (pod,) = pods["items"]
    assert pod["status"]["phase"] == "Succeeded"
    assert pod["metadata"]["ownerReferences"][0]["uid"] == uid
    assert pod["metadata"]["labels"]["batch.kubernetes.io/job-name"] == "once"


async def test_job_with_completions_runs_pods_in_parallel(api: RawApi) -> None:
    await api.request("POST", JOBS, body=job("three", "print(1)", completions=3, parallelism=2))
    done = await finished(api, "three", "Complete")
    assert done["status"]["succeeded"] == 3
    pods = await api.request("GET", PODS, query={"labelSelector": "job-name=three"})
    assert len(pods["items"]) == 3


async def test_job_past_backoff_limit_fails(api: RawApi) -> None:
    await api.request("POST", JOBS, body=job("broken", "raise SystemExit(3)", backoffLimit=1))
    done = await finished(api, "broken", "Failed")
    assert done["status"]["failed"] == 2 and "succeeded" not in done["status"]
    assert condition(done, "Failed")["reason"] == "BackoffLimitExceeded"  # type: ignore[index]
    assert condition(done, "FailureTarget") is not None
    assert not condition(done, "Complete")


async def test_job_deadline_fails_and_stops_its_pod(api: RawApi) -> None:
    body = job("slow", "import time; time.sleep(600)", activeDeadlineSeconds=1)
    await api.request("POST", JOBS, body=body)
    done = await finished(api, "slow", "Failed")
    assert condition(done, "Failed")["reason"] == "DeadlineExceeded"  # type: ignore[index]

    async def stopped() -> bool:
        pods = await api.request("GET", PODS, query={"labelSelector": "job-name=slow"})
        return all(p["metadata"].get("deletionTimestamp") for p in pods["items"])

    await until(stopped, what="the deadline-exceeded job's pod deleted")


async def test_job_validation_and_immutable_template(api: RawApi) -> None:
    bad = job("always", "print(1)")
    bad["spec"]["template"]["spec"]["restartPolicy"] = "Always"
    status = await invalid(api, JOBS, bad)
    assert status["details"]["causes"][0]["field"] == "spec.template.spec.restartPolicy"
    assert 'Unsupported value: "Always"' in status["message"]
    await invalid(api, JOBS, job("negative", "print(1)", backoffLimit=-1))

    created = await api.request("POST", JOBS, body=job("fixed", "print(1)", suspend=True))
    patch = {"spec": {"template": {"spec": {"containers": [
        {"name": "main", "image": "python:3", "command": ["python3", "-c", "print(2)"]}]}}}}  # fmt: skip
    with pytest.raises(ApiError) as exc:
        await api.request("PATCH", f"{JOBS}/fixed", body=patch,
                          content_type="application/strategic-merge-patch+json")  # fmt: skip
    assert exc.value.status == 422
    assert "spec.template: Invalid value: field is immutable" in exc.value.body["message"]
    # suspend is mutable; a suspended Job runs nothing until resumed.
    await until(lambda: _suspended(api, "fixed"), what="Suspended condition")
    pods = await api.request("GET", PODS, query={"labelSelector": "job-name=fixed"})
    assert not pods["items"]
    await api.request("PATCH", f"{JOBS}/fixed", body={"spec": {"suspend": False}},
                      content_type="application/merge-patch+json")  # fmt: skip
    done = await finished(api, "fixed", "Complete")
    assert done["metadata"]["uid"] == created["metadata"]["uid"]


async def _suspended(api: RawApi, name: str) -> bool:
    return condition(await api.request("GET", f"{JOBS}/{name}"), "Suspended") is not None


async def test_deleting_a_job_collects_its_pods(api: RawApi) -> None:
    await api.request("POST", JOBS, body=job("doomed", "print(1)"))
    await finished(api, "doomed", "Complete")
    await api.request("DELETE", f"{JOBS}/doomed", body={"propagationPolicy": "Background"})

    async def collected() -> bool:
        pods = await api.request("GET", PODS, query={"labelSelector": "job-name=doomed"})
        return not pods["items"]

    await until(collected, what="the job's pods collected")


# -- CronJob ------------------------------------------------------------------------


class Clock:
    """Moves the batch controller's time to chosen instants (real time otherwise)."""

    def __init__(self, cluster: KubeCluster) -> None:
        assert cluster.emulator.batch is not None
        self.controller = cluster.emulator.batch
        self.offset = 0.0
        self.controller.clock = lambda: time.time() + self.offset

    def move_to(self, when: datetime.datetime) -> None:
        self.offset = max(self.offset, when.timestamp() - time.time())
        self.controller._wake.set()

    async def run_at(self, when: datetime.datetime) -> None:
        """Move to ``when`` and wait for two complete controller passes there."""
        self.move_to(when)
        passes = self.controller.passes
        await until(lambda: self.controller.passes >= passes + 2, what="two controller passes")

    def reset(self) -> None:
        self.controller.clock = time.time


@pytest_asyncio.fixture(loop_scope="module")
async def clock(kube_cluster: KubeCluster) -> AsyncIterator[Clock]:
    c = Clock(kube_cluster)
    try:
        yield c
    finally:
        c.reset()


def _created(obj: dict[str, Any]) -> datetime.datetime:
    return datetime.datetime.strptime(obj["metadata"]["creationTimestamp"],
                                      "%Y-%m-%dT%H:%M:%SZ").replace(tzinfo=datetime.UTC)  # fmt: skip


async def owned_jobs(api: RawApi, cron_name: str) -> list[dict[str, Any]]:
    jobs = await api.request("GET", JOBS, query={"labelSelector": f"cron={cron_name}"})
    return [j for j in jobs["items"] if not j["metadata"].get("deletionTimestamp")]


async def test_cronjob_creates_jobs_on_schedule_and_keeps_history(api: RawApi, clock: Clock
                                                                  ) -> None:  # fmt: skip
    body = cronjob("tick", "*/5 * * * *", "print('tick')", successfulJobsHistoryLimit=1)
    created = await api.request("POST", CRONJOBS, body=body)
    spec = created["spec"]
    assert (spec["concurrencyPolicy"], spec["failedJobsHistoryLimit"]) == ("Allow", 1)
    schedule = parse("*/5 * * * *")
    first = schedule.next_after(_created(created))
    assert first is not None
    clock.move_to(first + datetime.timedelta(seconds=1))
    jobs = await until(lambda: owned_jobs(api, "tick"), what="the first scheduled job")
    assert [j["metadata"]["name"] for j in jobs] == [f"tick-{int(first.timestamp() // 60)}"]
    assert jobs[0]["metadata"]["ownerReferences"][0]["kind"] == "CronJob"
    assert jobs[0]["metadata"]["annotations"][
        "batch.kubernetes.io/cronjob-scheduled-timestamp"] == first.isoformat()  # fmt: skip
    await finished(api, jobs[0]["metadata"]["name"], "Complete")

    second = schedule.next_after(first)
    assert second is not None
    clock.move_to(second + datetime.timedelta(seconds=1))
    name = f"tick-{int(second.timestamp() // 60)}"
    await finished(api, name, "Complete")

    async def pruned() -> list[str]:
        names = [j["metadata"]["name"] for j in await owned_jobs(api, "tick")]
        return names if names == [name] else []

    await until(pruned, what="the older successful job pruned (history limit 1)")
    cj = await api.request("GET", f"{CRONJOBS}/tick")
    assert cj["status"]["lastScheduleTime"] == second.strftime("%Y-%m-%dT%H:%M:%SZ")
    assert "lastSuccessfulTime" in cj["status"]
    await api.request("DELETE", f"{CRONJOBS}/tick")


async def test_cronjob_forbid_skips_while_a_job_runs_and_replace_replaces(
    api: RawApi, clock: Clock
) -> None:
    body = cronjob("busy", "* * * * *", "import time; time.sleep(600)",
                   concurrencyPolicy="Forbid")  # fmt: skip
    created = await api.request("POST", CRONJOBS, body=body)
    schedule = parse("* * * * *")
    first = schedule.next_after(_created(created))
    assert first is not None
    clock.move_to(first + datetime.timedelta(seconds=1))
    (running,) = await until(lambda: owned_jobs(api, "busy"), what="the first job")

    async def active() -> dict[str, Any] | None:
        cj = await api.request("GET", f"{CRONJOBS}/busy")
        return cj if cj["status"].get("active") else None

    cj = await until(active, what="status.active of the cronjob")
    assert cj["status"]["active"][0]["name"] == running["metadata"]["name"]
    later = first + datetime.timedelta(minutes=3, seconds=1)
    await clock.run_at(later)
    assert [j["metadata"]["name"] for j in await owned_jobs(api, "busy")] == [
        running["metadata"]["name"]]  # fmt: skip

    await api.request("PATCH", f"{CRONJOBS}/busy", body={"spec": {"concurrencyPolicy": "Replace"}},
                      content_type="application/merge-patch+json")  # fmt: skip

    async def replaced() -> list[dict[str, Any]]:
        jobs = await owned_jobs(api, "busy")
        names = [j["metadata"]["name"] for j in jobs]
        return jobs if names and running["metadata"]["name"] not in names else []

    (newer,) = await until(replaced, what="the running job replaced")
    # The most recent missed time runs, not every missed minute.
    assert newer["metadata"]["name"] == f"busy-{int(later.timestamp() // 60)}"
    await api.request("DELETE", f"{CRONJOBS}/busy")


async def test_cronjob_validation(api: RawApi) -> None:
    status = await invalid(api, CRONJOBS, cronjob("bad", "61 * * * *", "print(1)"))
    assert status["details"]["causes"][0]["field"] == "spec.schedule"
    await invalid(api, CRONJOBS, cronjob("bad", "* * *", "print(1)"))
    await invalid(
        api, CRONJOBS, cronjob("bad", "@daily", "print(1)", concurrencyPolicy="Sometimes")
    )
    await invalid(api, CRONJOBS, cronjob("bad", "@daily", "print(1)", timeZone="Mars/Olympus"))
    ok = await api.request("POST", CRONJOBS, body=cronjob("zoned", "@daily", "print(1)",
                                                        timeZone="Europe/Berlin"))  # fmt: skip
    assert ok["spec"]["timeZone"] == "Europe/Berlin"


async def test_cron_parser() -> None:
    t = datetime.datetime(2026, 1, 1, 12, 7, tzinfo=datetime.UTC)  # a Thursday
    assert parse("*/15 * * * *").next_after(t) == t.replace(minute=15)
    assert parse("0 9-17/4 * * *").next_after(t) == t.replace(hour=13, minute=0)
    assert parse("30 2 * * mon").next_after(t) == datetime.datetime(2026, 1, 5, 2, 30,
                                                                    tzinfo=datetime.UTC)  # fmt: skip
    assert parse("0 0 1 jan,jul *").next_after(t) == datetime.datetime(2026, 7, 1,
                                                                       tzinfo=datetime.UTC)  # fmt: skip
    # Both day fields restricted: either matches (the 13th, or a Friday).
    assert parse("0 0 13 * 5").next_after(t) == datetime.datetime(2026, 1, 2, tzinfo=datetime.UTC)
    assert parse("0 0 * * 7").next_after(t) == datetime.datetime(2026, 1, 4, tzinfo=datetime.UTC)
    assert parse("@hourly").next_after(t) == t.replace(hour=13, minute=0)
    assert parse("0 0 30 2 *").next_after(t) is None  # never
    for bad in ("* * * *", "60 * * * *", "* 24 * * *", "*/0 * * * *", "5-1 * * * *", "x * * * *"):
        with pytest.raises(CronError):
            parse(bad)


# -- HPA, PDB, NetworkPolicy, Ingress ------------------------------------------------------


async def test_hpa_pdb_netpol_ingress_stored_with_defaults(api: RawApi) -> None:
    hpa = await api.request("POST", f"/apis/autoscaling/v2/namespaces/{NS}/horizontalpodautoscalers",
                            body={"metadata": {"name": "web"}, "spec": {
                                "scaleTargetRef": {"apiVersion": "apps/v1", "kind": "Deployment",
                                                   "name": "web"}, "maxReplicas": 3}})  # fmt: skip
    assert hpa["spec"]["minReplicas"] == 1
    assert hpa["spec"]["metrics"][0]["resource"]["name"] == "cpu"
    netpol = await api.request("POST", f"/apis/networking.k8s.io/v1/namespaces/{NS}/networkpolicies",
                               body={"metadata": {"name": "np"}, "spec": {
                                   "podSelector": {"matchLabels": {"app": "web"}},
                                   "egress": [{"ports": [{"port": 53}]}]}})  # fmt: skip
    assert netpol["spec"]["policyTypes"] == ["Ingress", "Egress"]
    assert netpol["spec"]["egress"][0]["ports"][0]["protocol"] == "TCP"
    pdb = await api.request("POST", f"/apis/policy/v1/namespaces/{NS}/poddisruptionbudgets",
                            body={"metadata": {"name": "pdb"}, "spec": {"minAvailable": 1,
                                  "selector": {"matchLabels": {"app": "web"}}}})  # fmt: skip
    assert pdb["spec"]["minAvailable"] == 1
    ing = await api.request("POST", f"/apis/networking.k8s.io/v1/namespaces/{NS}/ingresses",
                            body={"metadata": {"name": "ing"}, "spec": {"rules": [{"http": {
                                "paths": [{"path": "/", "pathType": "Prefix", "backend": {
                                    "service": {"name": "web", "port": {"number": 80}}}}]}}]}})  # fmt: skip
    assert ing["spec"]["rules"][0]["http"]["paths"][0]["backend"]["service"]["name"] == "web"
    hpas = await api.request("GET", "/apis/autoscaling/v2/horizontalpodautoscalers")
    assert [h["metadata"]["name"] for h in hpas["items"]] == ["web"]


@pytest.mark.parametrize(
    "path, spec, field",
    [
        ("autoscaling/v2/namespaces/default/horizontalpodautoscalers",
         {"scaleTargetRef": {"kind": "Deployment", "name": "x"}, "minReplicas": 4,
          "maxReplicas": 2}, "spec.maxReplicas"),
        ("autoscaling/v2/namespaces/default/horizontalpodautoscalers",
         {"maxReplicas": 2}, "spec.scaleTargetRef.kind"),
        ("policy/v1/namespaces/default/poddisruptionbudgets",
         {"minAvailable": 1, "maxUnavailable": 1}, "spec"),
        ("policy/v1/namespaces/default/poddisruptionbudgets",
         {"maxUnavailable": "half"}, "spec.maxUnavailable"),
        ("networking.k8s.io/v1/namespaces/default/networkpolicies",
         {"podSelector": {}, "policyTypes": ["Sideways"]}, "spec.policyTypes[0]"),
        ("networking.k8s.io/v1/namespaces/default/ingresses",
         {"rules": [{"http": {"paths": [{"path": "/", "backend": {
             "service": {"name": "web", "port": {"number": 80}}}}]}}]},
         "spec.rules[0].http.paths[0].pathType"),
        ("networking.k8s.io/v1/namespaces/default/ingresses", {}, "spec"),
    ],
)  # fmt: skip
async def test_invalid_policy_and_networking_objects_rejected(
    api: RawApi, path: str, spec: dict[str, Any], field: str
) -> None:
    status = await invalid(api, f"/apis/{path}", {"metadata": {"name": "bad"}, "spec": spec})
    assert field in [c["field"] for c in status["details"]["causes"]], status
