"""Job and CronJob controllers (``batch/v1``).

A Job keeps ``parallelism`` pods running (from its template, owned by the Job)
until ``completions`` of them succeed, then sets ``completionTime`` and the
``SuccessCriteriaMet`` and ``Complete`` conditions. More failed pods than
``backoffLimit`` (for ``restartPolicy: OnFailure``, container restarts), or
running past ``activeDeadlineSeconds``, fails it (``FailureTarget`` and
``Failed``); its remaining pods are deleted. Failed pods are replaced at once
(no exponential back-off). ``suspend`` deletes active pods;
``ttlSecondsAfterFinished`` deletes a finished Job.

A CronJob creates a Job ``<name>-<minutes since epoch>`` for the most recent
schedule time it missed (``startingDeadlineSeconds`` honoured), with
``concurrencyPolicy`` Allow/Forbid/Replace, and deletes finished Jobs beyond
``successfulJobsHistoryLimit``/``failedJobsHistoryLimit``. ``clock`` (seconds
since the epoch) may be replaced by tests to move time forward.
"""

from __future__ import annotations

import copy
import datetime
import time
from collections.abc import Callable
from typing import Any

from . import cron, errors
from .store import Event, StorageKey
from .verbs import meta_deleting
from .workloads import OwnerController, _pod_ready

JOB_KEY = ("batch", "jobs")
CRONJOB_KEY = ("batch", "cronjobs")
POD_KEY = ("", "pods")
SCHEDULED_ANNOTATION = "batch.kubernetes.io/cronjob-scheduled-timestamp"
_MAX_MISSED = 1000


def _stamp(seconds: float) -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(seconds))


def _parse(stamp: str) -> float:
    return datetime.datetime.strptime(stamp, "%Y-%m-%dT%H:%M:%SZ").replace(
        tzinfo=datetime.timezone.utc
    ).timestamp()  # fmt: skip


def finished(job: dict[str, Any]) -> str:
    """``"Complete"`` or ``"Failed"`` once the Job has that condition, else ``""``."""
    for cond in (job.get("status") or {}).get("conditions") or []:
        if cond.get("type") in ("Complete", "Failed") and cond.get("status") == "True":
            return str(cond["type"])
    return ""


def _owner_ref(owner: dict[str, Any], kind: str) -> dict[str, Any]:
    return {"apiVersion": "batch/v1", "kind": kind, "name": owner["metadata"]["name"],
            "uid": owner["metadata"]["uid"], "controller": True,
            "blockOwnerDeletion": True}  # fmt: skip


def _ref(job: dict[str, Any]) -> dict[str, Any]:
    meta = job["metadata"]
    return {"kind": "Job", "namespace": meta["namespace"], "name": meta["name"],
            "uid": meta["uid"], "apiVersion": "batch/v1",
            "resourceVersion": meta["resourceVersion"]}  # fmt: skip


class BatchController(OwnerController):
    period = 1.0  # schedules and deadlines are time-driven

    def __init__(self, api: Any, clock: Callable[[], float] = time.time) -> None:
        super().__init__(api)
        self.clock = clock

    def interested(self, key: StorageKey, event: Event) -> bool:
        if key in (JOB_KEY, CRONJOB_KEY):
            return True
        return key == POD_KEY and any(
            r.get("kind") == "Job" for r in event.obj["metadata"].get("ownerReferences") or []
        )

    def sync(self) -> None:
        for job in list(self.api.store.items(JOB_KEY)):
            if not meta_deleting(job):
                self._job(job)
        for cronjob in list(self.api.store.items(CRONJOB_KEY)):
            if not meta_deleting(cronjob):
                self._cronjob(cronjob)

    def _set_status(self, key: StorageKey, obj: dict[str, Any], status: dict[str, Any]) -> None:
        if obj.get("status") == status:
            return
        new = copy.deepcopy(obj)
        new["status"] = status
        self.api._commit(self._rt(key), obj, new, "status")

    # -- Job ----------------------------------------------------------------------

    def _condition(self, ctype: str, reason: str, message: str) -> dict[str, Any]:
        stamp = _stamp(self.clock())
        return {"type": ctype, "status": "True", "reason": reason, "message": message,
                "lastProbeTime": stamp, "lastTransitionTime": stamp}  # fmt: skip

    def _job(self, job: dict[str, Any]) -> None:
        spec, old = job["spec"], job.get("status") or {}
        now = self.clock()
        if finished(job):
            ttl = spec.get("ttlSecondsAfterFinished")
            done = old.get("completionTime") or next(
                (c["lastTransitionTime"] for c in old.get("conditions") or []
                 if c.get("type") == "Failed"), None)  # fmt: skip
            if ttl is not None and done and _parse(done) + int(ttl) <= now:
                self.delete(self._rt(JOB_KEY), job)
            return
        pod_rt = self._rt(POD_KEY)
        pods = self._owned(POD_KEY, job)
        phase = [(p.get("status") or {}).get("phase") for p in pods]
        active = [p for p, ph in zip(pods, phase, strict=True)
                  if ph not in ("Succeeded", "Failed") and not meta_deleting(p)]  # fmt: skip
        succeeded = phase.count("Succeeded")
        failed = phase.count("Failed")
        restarts = sum(int(c.get("restartCount", 0)) for p in active
                       for c in (p.get("status") or {}).get("containerStatuses") or [])  # fmt: skip
        status: dict[str, Any] = {k: v for k, v in old.items() if k in ("startTime",
                                                                      "conditions")}  # fmt: skip
        conditions = list(status.get("conditions") or [])
        completions = spec.get("completions")
        parallelism = int(spec.get("parallelism", 1))
        deadline = spec.get("activeDeadlineSeconds")
        policy = ((spec.get("template") or {}).get("spec") or {}).get("restartPolicy")
        backoff = int(spec.get("backoffLimit", 6))
        if spec.get("suspend"):
            for pod in active:
                self.delete(pod_rt, pod)
            if not any(c.get("type") == "Suspended" for c in conditions):
                conditions.append(self._condition("Suspended", "JobSuspended", "Job suspended"))
            active = []
            status.pop("startTime", None)
        else:
            conditions = [c for c in conditions if c.get("type") != "Suspended"]
            status.setdefault("startTime", _stamp(now))
            failure: tuple[str, str] | None = None
            if failed > backoff or (policy == "OnFailure" and restarts > backoff):
                failure = "BackoffLimitExceeded", "Job has reached the specified backoff limit"
            elif deadline and _parse(status["startTime"]) + int(deadline) <= now:
                failure = "DeadlineExceeded", "Job was active longer than specified deadline"
            done = (succeeded >= completions if completions is not None
                    else succeeded > 0 and not active)  # fmt: skip
            if failure:
                conditions += [self._condition("FailureTarget", *failure),
                               self._condition("Failed", *failure)]  # fmt: skip
            elif done:
                conditions += [
                    self._condition("SuccessCriteriaMet", "CompletionsReached",
                                    "Reached expected number of succeeded pods"),
                    self._condition("Complete", "CompletionsReached",
                                    "Reached expected number of succeeded pods"),
                ]  # fmt: skip
                status["completionTime"] = _stamp(now)
            if failure or done:
                for pod in active:
                    self.delete(pod_rt, pod)
                active = []
            else:
                want = parallelism if completions is None else min(
                    parallelism, completions - succeeded)  # fmt: skip
                for _ in range(want - len(active)):
                    active.append(self._new_pod(job))
        status.update(active=len(active), succeeded=succeeded, failed=failed,
                      ready=sum(1 for p in active if _pod_ready(p)),
                      terminating=sum(1 for p in pods if meta_deleting(p)),
                      uncountedTerminatedPods={})  # fmt: skip
        if conditions:
            status["conditions"] = conditions
        for key in ("active", "succeeded", "failed"):
            if not status[key]:
                del status[key]
        self._set_status(JOB_KEY, job, status)

    def _new_pod(self, job: dict[str, Any]) -> dict[str, Any]:
        meta = job["metadata"]
        template = job["spec"].get("template") or {}
        tmeta = template.get("metadata") or {}
        pod = {
            "apiVersion": "v1",
            "kind": "Pod",
            "metadata": {
                "generateName": f"{meta['name']}-",
                "namespace": meta["namespace"],
                "labels": dict(tmeta.get("labels") or {}),
                "annotations": dict(tmeta.get("annotations") or {}),
                "ownerReferences": [_owner_ref(job, "Job")],
            },
            "spec": copy.deepcopy(template.get("spec") or {}),
        }
        return self.api.create(self._rt(POD_KEY), meta["namespace"], pod)

    # -- CronJob ------------------------------------------------------------------

    def _cronjob(self, cronjob: dict[str, Any]) -> None:
        spec = cronjob["spec"]
        old = cronjob.get("status") or {}
        job_rt = self._rt(JOB_KEY)
        jobs = self._owned(JOB_KEY, cronjob)
        active = [j for j in jobs if not finished(j) and not meta_deleting(j)]
        self._prune_history(spec, [j for j in jobs if finished(j) and not meta_deleting(j)])
        status: dict[str, Any] = {k: v for k, v in old.items() if k == "lastScheduleTime"}
        succeeded = [j["status"]["completionTime"] for j in jobs
                     if finished(j) == "Complete" and j["status"].get("completionTime")]  # fmt: skip
        if succeeded:
            status["lastSuccessfulTime"] = max(succeeded)
        elif old.get("lastSuccessfulTime"):
            status["lastSuccessfulTime"] = old["lastSuccessfulTime"]
        scheduled = None if spec.get("suspend") else self._due(cronjob)
        if scheduled is not None:
            policy = spec.get("concurrencyPolicy", "Allow")
            if policy == "Forbid" and active:
                scheduled = None  # retried while still within startingDeadlineSeconds
            elif policy == "Replace":
                for job in active:
                    self.delete(job_rt, job)
                active = []
        if scheduled is not None:
            job = self._new_job(cronjob, scheduled)
            if job is not None:
                active.append(job)
            status["lastScheduleTime"] = _stamp(scheduled.timestamp())
        if active:
            status["active"] = [_ref(j) for j in active]
        self._set_status(CRONJOB_KEY, cronjob, status)

    def _due(self, cronjob: dict[str, Any]) -> datetime.datetime | None:
        """The most recent schedule time not yet run, if any is due now."""
        spec, meta = cronjob["spec"], cronjob["metadata"]
        try:
            schedule = cron.parse(str(spec.get("schedule", "")))
            zone = cron.zone(spec.get("timeZone"))
        except (cron.CronError, KeyError):
            return None
        now = self.clock()
        last = (cronjob.get("status") or {}).get("lastScheduleTime") or meta["creationTimestamp"]
        earliest = _parse(last)
        deadline = spec.get("startingDeadlineSeconds")
        if deadline is not None:
            earliest = max(earliest, now - int(deadline))
        t = datetime.datetime.fromtimestamp(earliest, zone)
        latest = None
        for _ in range(_MAX_MISSED):
            nxt = schedule.next_after(t)
            if nxt is None or nxt.timestamp() > now:
                break
            latest = t = nxt
        return latest

    def _new_job(self, cronjob: dict[str, Any], scheduled: datetime.datetime) -> dict | None:
        meta = cronjob["metadata"]
        template = cronjob["spec"].get("jobTemplate") or {}
        tmeta = template.get("metadata") or {}
        annotations = dict(tmeta.get("annotations") or {})
        annotations[SCHEDULED_ANNOTATION] = scheduled.isoformat()
        job = {
            "apiVersion": "batch/v1",
            "kind": "Job",
            "metadata": {
                "name": f"{meta['name']}-{int(scheduled.timestamp() // 60)}",
                "namespace": meta["namespace"],
                "labels": dict(tmeta.get("labels") or {}),
                "annotations": annotations,
                "ownerReferences": [_owner_ref(cronjob, "CronJob")],
            },
            "spec": copy.deepcopy(template.get("spec") or {}),
        }
        try:
            return self.api.create(self._rt(JOB_KEY), meta["namespace"], job)
        except errors.ApiError as exc:
            if exc.code != 409:
                raise
            return None

    def _prune_history(self, spec: dict[str, Any], done: list[dict[str, Any]]) -> None:
        job_rt = self._rt(JOB_KEY)
        for outcome, limit_key in (("Complete", "successfulJobsHistoryLimit"),
                                   ("Failed", "failedJobsHistoryLimit")):  # fmt: skip
            limit = int(spec.get(limit_key, 3 if outcome == "Complete" else 1))
            these = sorted((j for j in done if finished(j) == outcome),
                           key=lambda j: (j["metadata"]["creationTimestamp"],
                                          j["metadata"]["name"]))  # fmt: skip
            for job in these[: max(0, len(these) - limit)]:
                self.delete(job_rt, job)
