"""The API verbs on stored objects: create, get, list, update, patch, delete.

Everything here is synchronous and runs on the event loop thread, so each verb is
atomic with respect to others (the role etcd transactions play in a real server).
Stored objects are never mutated in place: every write stores a fresh copy.
"""

from __future__ import annotations

import base64
import copy
import json
import random
import uuid
from typing import Any

import yaml

from . import admission, errors, kinds, openapi, rbac, ssa
from .defaults import apply_defaults, initial_status, now, validate_builtin, validate_name
from .patch import json_patch, merge_patch, strategic_merge
from .resources import Registry, ResourceType
from .schema import admit
from .selectors import field_matcher, label_matcher
from .store import Store
from .subresources import SubresourceVerbs

NS_KEY = ("", "namespaces")
CRD_KEY = ("apiextensions.k8s.io", "customresourcedefinitions")
JSON_PATCH = "application/json-patch+json"
MERGE_PATCH = "application/merge-patch+json"
STRATEGIC_PATCH = "application/strategic-merge-patch+json"
APPLY_PATCH = "application/apply-patch+yaml"
_IMMUTABLE_META = ("uid", "creationTimestamp", "deletionTimestamp", "deletionGracePeriodSeconds",
                   "generation", "namespace", "name", "selfLink")  # fmt: skip
SYSTEM_NAMESPACES = ("default", "kube-system", "kube-public", "kube-node-lease")
_NAME_CHARS = "bcdfghjklmnpqrstvwxz2456789"


def _spec_part(obj: dict[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in obj.items() if k not in ("metadata", "status")}


class Api(SubresourceVerbs):
    def __init__(self, store: Store, registry: Registry) -> None:
        self.store = store
        self.registry = registry
        for name in SYSTEM_NAMESPACES:
            store.put(NS_KEY, self._new_meta(
                {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": name},
                 "spec": {"finalizers": ["kubernetes"]}, "status": {"phase": "Active"}}))  # fmt: skip
            store.put(admission.SA_KEY, self._new_meta(admission.default_service_account(name)))
        for key, obj in rbac.bootstrap_objects():
            store.put(key, self._new_meta(obj))

    # -- helpers ---------------------------------------------------------------

    @staticmethod
    def _new_meta(obj: dict[str, Any]) -> dict[str, Any]:
        meta = obj["metadata"]
        meta["uid"] = str(uuid.uuid4())
        meta["creationTimestamp"] = now()
        meta["generation"] = 1
        for key in ("deletionTimestamp", "deletionGracePeriodSeconds", "managedFields"):
            meta.pop(key, None)
        return obj

    @staticmethod
    def present(rt: ResourceType, obj: dict[str, Any]) -> dict[str, Any]:
        """The object as seen through ``rt``'s version (CRD versions share storage)."""
        if obj.get("apiVersion") == rt.api_version:
            return obj
        return dict(obj, apiVersion=rt.api_version)

    def must_get(self, rt: ResourceType, ns: str, name: str) -> dict[str, Any]:
        obj = self.store.get(rt.storage_key, ns, name)
        if obj is None:
            raise errors.not_found(rt.qualified, name)
        return obj

    def _check_namespace(self, rt: ResourceType, ns: str) -> None:
        if not rt.namespaced:
            return
        namespace = self.store.get(NS_KEY, "", ns)
        if namespace is None:
            raise errors.not_found("namespaces", ns)
        if namespace["metadata"].get("deletionTimestamp"):
            raise errors.forbidden(
                f"unable to create new content in namespace {ns} because it is being terminated"
            )

    @staticmethod
    def schema(rt: ResourceType) -> dict[str, Any] | None:
        """The kind's OpenAPI schema: the CRD's, or the built-in definition."""
        if rt.custom:
            return rt.schema
        return openapi.schema_for(rt.group, rt.version, rt.kind)

    def _admit(self, rt: ResourceType, obj: dict[str, Any], strict: bool) -> dict[str, Any]:
        removed: list[str] = []
        if rt.custom:
            obj, causes = admit(rt.schema, obj, removed)
        else:
            # A real server decodes into Go structs: unknown fields cannot survive.
            obj = openapi.prune_unknown(self.schema(rt), obj, removed)
            apply_defaults(rt, obj)
            causes = validate_builtin(rt, obj)
        if strict and removed:
            # What fieldValidation=Strict (kubectl's default) answers for unknown fields.
            raise errors.bad_request(
                f'{rt.kind} in version "{rt.version}" cannot be handled as a {rt.kind}: '
                + ", ".join(f'strict decoding error: unknown field "{r}"' for r in removed)
            )
        if causes:
            raise errors.invalid(rt.kind, rt.group, obj["metadata"].get("name", ""), causes)
        return obj

    def _crd_status(self, crd: dict[str, Any], old: dict[str, Any] | None) -> None:
        stamp = now()
        conditions = [
            {"type": t, "status": "True", "reason": r, "message": m, "lastTransitionTime": stamp}
            for t, r, m in (
                ("NamesAccepted", "NoConflicts", "no conflicts found"),
                ("Established", "InitialNamesAccepted", "the initial names have been accepted"),
            )
        ]
        stored = list(((old or {}).get("status") or {}).get("storedVersions") or [])
        for ver in crd["spec"]["versions"]:
            if ver.get("storage") and ver["name"] not in stored:
                stored.append(ver["name"])
        crd["status"] = {
            "conditions": conditions,
            "acceptedNames": crd["spec"]["names"],
            "storedVersions": stored,
        }

    # -- create / read ---------------------------------------------------------

    def create(
        self,
        rt: ResourceType,
        ns: str,
        body: Any,
        strict: bool = False,
        manager: str | None = None,
        operation: str = "Update",
    ) -> dict[str, Any]:
        if not isinstance(body, dict):
            raise errors.bad_request("the request body must be a JSON object")
        obj = copy.deepcopy(body)
        if obj.get("kind", rt.kind) != rt.kind:
            raise errors.bad_request(
                f"the kind of the provided object ({obj.get('kind')}) does not match {rt.kind}"
            )
        obj["apiVersion"], obj["kind"] = rt.api_version, rt.kind
        meta = obj.setdefault("metadata", {})
        if rt.namespaced:
            if meta.get("namespace", ns) != ns:
                raise errors.bad_request(
                    "the namespace of the provided object does not match the namespace sent on "
                    "the request"
                )
            meta["namespace"] = ns
        else:
            meta.pop("namespace", None)
        if not meta.get("name"):
            if not meta.get("generateName"):
                raise errors.invalid(rt.kind, rt.group, "", [errors.cause(
                    "metadata.name", "Required value: name or generateName is required",
                    "FieldValueRequired")])  # fmt: skip
            meta["name"] = meta["generateName"] + "".join(random.choices(_NAME_CHARS, k=5))
        causes = validate_name(rt, meta["name"])
        if causes:
            raise errors.invalid(rt.kind, rt.group, meta["name"], causes)
        self._check_namespace(rt, ns)
        if self.store.get(rt.storage_key, ns if rt.namespaced else "", meta["name"]):
            raise errors.already_exists(rt.qualified, meta["name"])
        self._new_meta(obj)
        if rt.storage_key == admission.POD_KEY:
            admission.admit_pod(self.store, obj)
        initial_status(rt, obj)
        obj = self._admit(rt, obj, strict)
        if manager:
            ssa.on_create(obj, body, manager, operation, self.schema(rt),
                          "status" in rt.subresources)  # fmt: skip
        if rt.storage_key == CRD_KEY:
            self._crd_status(obj, None)
            if not self.store.dry:
                self.registry.register_crd(obj)
        stored = self.store.put(rt.storage_key, obj)
        if rt.storage_key == NS_KEY and not self.store.dry:
            sa_rt = self.registry.by_storage(admission.SA_KEY)
            assert sa_rt is not None
            self.create(sa_rt, meta["name"], admission.default_service_account(meta["name"]))
        return self.present(rt, stored)

    def get(self, rt: ResourceType, ns: str, name: str) -> dict[str, Any]:
        return self.present(rt, self.must_get(rt, ns, name))

    def list(
        self,
        rt: ResourceType,
        ns: str | None,
        labels: str | None,
        fields: str | None,
        limit: int = 0,
        cont: str = "",
    ) -> dict[str, Any]:
        """List in (namespace, name) order; ``limit``/``continue`` page through it."""
        lmatch, fmatch = label_matcher(labels), field_matcher(fields)
        rv, after = str(self.store.rv), None
        if cont:
            rv, after = _decode_continue(cont)
        matched = [
            o for o in self.store.items(rt.storage_key, ns)
            if lmatch(o) and fmatch(o)
            and (after is None or _order(o) > after)
        ]  # fmt: skip
        matched.sort(key=_order)
        meta: dict[str, Any] = {"resourceVersion": rv}
        if limit > 0 and len(matched) > limit:
            matched, rest = matched[:limit], len(matched) - limit
            meta["continue"] = _encode_continue(rv, _order(matched[-1]))
            meta["remainingItemCount"] = rest
        return {
            "kind": rt.list_kind,
            "apiVersion": rt.api_version,
            "metadata": meta,
            "items": [self.present(rt, o) for o in matched],
        }

    # -- update / patch --------------------------------------------------------

    def update(
        self,
        rt: ResourceType,
        ns: str,
        name: str,
        body: Any,
        sub: str | None = None,
        strict: bool = False,
        manager: str | None = None,
    ) -> dict[str, Any]:
        if not isinstance(body, dict):
            raise errors.bad_request("the request body must be a JSON object")
        old = self.must_get(rt, ns, name)
        if (body.get("metadata") or {}).get("name", name) != name:
            raise errors.bad_request(
                f"the name of the object ({body['metadata']['name']}) does not match the name "
                f"on the URL ({name})"
            )
        return self._commit(rt, old, copy.deepcopy(body), sub, strict, manager)

    def _commit(
        self,
        rt: ResourceType,
        old: dict[str, Any],
        new: dict[str, Any],
        sub: str | None,
        strict: bool = False,
        manager: str | None = None,
        applied: bool = False,
    ) -> dict[str, Any]:
        """Store ``new`` in place of ``old``.

        ``manager`` (a non-apply write) takes ownership of what it changed;
        ``applied`` means ``new`` already carries the managedFields of an apply.
        Otherwise (controllers, subresources) managedFields stay as they were.
        """
        om = old["metadata"]
        meta = new.setdefault("metadata", {})
        if not isinstance(meta, dict):
            raise errors.bad_request("metadata must be an object")
        if meta.get("resourceVersion") and meta["resourceVersion"] != om["resourceVersion"]:
            raise errors.conflict(rt.qualified, om["name"])
        if meta.get("uid") and meta["uid"] != om["uid"]:
            raise errors.conflict(rt.qualified, om["name"], "Precondition failed: UID mismatch")
        if sub == "status":
            new = dict(copy.deepcopy(old), status=new.get("status"))
            if new["status"] is None:
                new.pop("status")
        else:
            for key in _IMMUTABLE_META:
                if key in om:
                    meta[key] = om[key]
                else:
                    meta.pop(key, None)
            if not applied:
                if om.get("managedFields") is not None:
                    meta["managedFields"] = om["managedFields"]
                else:
                    meta.pop("managedFields", None)
            new["apiVersion"], new["kind"] = old["apiVersion"], old["kind"]
            if "status" in rt.subresources or rt.plural == "namespaces":
                if "status" in old:
                    new["status"] = copy.deepcopy(old["status"])
                else:
                    new.pop("status", None)
        new["metadata"]["resourceVersion"] = om["resourceVersion"]
        new = self._admit(rt, new, strict)
        if sub is None and not rt.custom and rt.plural in kinds.PLURALS:
            causes = kinds.validate_update(rt.plural, old, new)
            if causes:
                raise errors.invalid(rt.kind, rt.group, om["name"], causes)
        if manager and sub is None and not applied:
            ssa.on_update(old, new, manager, self.schema(rt), "status" in rt.subresources)
        if _spec_part(new) != _spec_part(old):
            new["metadata"]["generation"] = int(om.get("generation") or 1) + 1
        if rt.storage_key == CRD_KEY and sub != "status":
            self._crd_status(new, old)
        if new == old:
            return self.present(rt, old)
        if meta_deleting(new) and not new["metadata"].get("finalizers"):
            if not new["metadata"].get("deletionGracePeriodSeconds"):
                return self._remove(rt, new)
        stored = self.store.put(rt.storage_key, new)
        if rt.storage_key == CRD_KEY and not meta_deleting(stored) and not self.store.dry:
            self.registry.register_crd(stored)
        return self.present(rt, stored)

    def patch(
        self,
        rt: ResourceType,
        ns: str,
        name: str,
        content_type: str,
        raw: bytes,
        sub: str | None = None,
        strict: bool = False,
        manager: str | None = None,
        force: bool = False,
    ) -> dict[str, Any]:
        ctype = content_type.split(";")[0].strip()
        try:
            doc = yaml.safe_load(raw) if ctype == APPLY_PATCH else json.loads(raw or b"null")
        except (ValueError, yaml.YAMLError) as exc:
            raise errors.bad_request(f"error decoding patch: {exc}") from None
        if ctype == APPLY_PATCH:
            return self._apply(rt, ns, name, doc, sub, strict, manager, force)
        old = self.must_get(rt, ns, name)
        current = self.get_scale(rt, old) if sub == "scale" else old
        if ctype == JSON_PATCH:
            patched = json_patch(current, doc)
        elif ctype == MERGE_PATCH:
            patched = merge_patch(current, doc)
        elif ctype == STRATEGIC_PATCH:
            if rt.custom and sub != "scale":
                raise errors.unsupported_media(
                    "strategic merge patch is not supported for custom resources"
                )
            patched = strategic_merge(current, doc)
        else:
            raise errors.unsupported_media(f"the body of the request was in an unknown format: "
                                           f"accepted media types include: {JSON_PATCH}, "
                                           f"{MERGE_PATCH}, {STRATEGIC_PATCH}, {APPLY_PATCH}")  # fmt: skip
        if not isinstance(patched, dict):
            raise errors.bad_request("the patched object is not a JSON object")
        if (patched.get("metadata") or {}).get("name", name) != name:
            raise errors.bad_request("the name of the object does not match the URL")
        if sub == "scale":
            return self.update_scale(rt, ns, name, patched)
        return self._commit(rt, old, patched, sub, strict, manager)

    def _apply(
        self,
        rt: ResourceType,
        ns: str,
        name: str,
        doc: Any,
        sub: str | None,
        strict: bool,
        manager: str | None,
        force: bool,
    ) -> dict[str, Any]:
        """Server-side apply (``application/apply-patch+yaml``)."""
        if not manager:
            raise errors.bad_request(
                'PatchOptions.meta.k8s.io "" is invalid: fieldManager: Required value: is '
                "required for apply patch"
            )
        if not isinstance(doc, dict):
            raise errors.bad_request("the apply configuration must be an object")
        if not doc.get("apiVersion") or not doc.get("kind"):
            raise errors.bad_request("apiVersion and kind must be set in an apply configuration")
        if (doc.get("metadata") or {}).get("name", name) != name:
            raise errors.bad_request("the name of the object does not match the URL")
        old = self.store.get(rt.storage_key, ns, name)
        if old is None:
            if sub:
                raise errors.not_found(rt.qualified, name)
            body = dict(doc, metadata=dict(doc.get("metadata") or {}, name=name))
            return self.create(rt, ns, body, strict, manager, "Apply")
        if sub:
            return self._commit(rt, old, merge_patch(old, doc), sub, strict)
        new = ssa.apply(old, doc, manager, force, self.schema(rt), "status" in rt.subresources,
                        rt.qualified)  # fmt: skip
        rv = (doc.get("metadata") or {}).get("resourceVersion")
        new["metadata"]["resourceVersion"] = rv or old["metadata"]["resourceVersion"]
        return self._commit(rt, old, new, None, strict, applied=True)

    # -- delete ----------------------------------------------------------------

    def delete(
        self, rt: ResourceType, ns: str, name: str, opts: dict[str, Any]
    ) -> tuple[dict[str, Any], bool]:
        """Delete or start deleting; returns (object, removed now)."""
        old = self.must_get(rt, ns, name)
        om = old["metadata"]
        pre = opts.get("preconditions") or {}
        if pre.get("uid") and pre["uid"] != om["uid"]:
            raise errors.conflict(rt.qualified, name, f"Precondition failed: UID in precondition: "
                                  f"{pre['uid']}, UID in object meta: {om['uid']}")  # fmt: skip
        if pre.get("resourceVersion") and pre["resourceVersion"] != om["resourceVersion"]:
            raise errors.conflict(rt.qualified, name)
        policy = opts.get("propagationPolicy")
        if not policy:
            policy = "Orphan" if opts.get("orphanDependents") else "Background"
        if policy not in ("Background", "Foreground", "Orphan"):
            raise errors.invalid("DeleteOptions", "", "", [errors.cause(
                "propagationPolicy", f"Unsupported value: {policy!r}")])  # fmt: skip
        new = copy.deepcopy(old)
        meta = new["metadata"]
        finalizers = list(meta.get("finalizers") or [])
        wanted = {"Foreground": "foregroundDeletion", "Orphan": "orphan"}.get(policy)
        if wanted and wanted not in finalizers and not meta_deleting(old):
            finalizers.append(wanted)
        if finalizers:
            meta["finalizers"] = finalizers
        if rt.storage_key == NS_KEY:
            if name in SYSTEM_NAMESPACES:
                raise errors.forbidden(f'namespaces "{name}" is forbidden: this namespace may '
                                       "not be deleted")  # fmt: skip
            # The namespace controller empties it, then removes it.
            if not meta_deleting(old):
                meta["deletionTimestamp"] = now()
                meta["deletionGracePeriodSeconds"] = 0
                new.setdefault("status", {})["phase"] = "Terminating"
                return self.present(rt, self.store.put(rt.storage_key, new)), False
            return self.present(rt, old), False
        grace = opts.get("gracePeriodSeconds")
        if (
            rt.plural == "pods"
            and new["spec"].get("nodeName")
            and ((new.get("status") or {}).get("phase") not in ("Succeeded", "Failed"))
        ):
            if grace is None:
                grace = new["spec"].get("terminationGracePeriodSeconds", 30)
            current = om.get("deletionGracePeriodSeconds")
            if grace > 0 and (current is None or grace < current):
                meta["deletionTimestamp"] = now(grace)
                meta["deletionGracePeriodSeconds"] = grace
                return self.present(rt, self.store.put(rt.storage_key, new)), False
            if grace > 0:
                return self.present(rt, old), False
        meta["deletionGracePeriodSeconds"] = 0
        if finalizers:
            if not meta_deleting(old):
                meta["deletionTimestamp"] = now()
            if new == old:
                return self.present(rt, old), False
            return self.present(rt, self.store.put(rt.storage_key, new)), False
        return self._remove(rt, new), True

    def _remove(self, rt: ResourceType, obj: dict[str, Any]) -> dict[str, Any]:
        gone = self.store.remove(rt.storage_key, obj)
        if rt.storage_key == CRD_KEY and not self.store.dry:
            for crt in self.registry.unregister_crd(obj["metadata"]["name"])[:1]:
                self.store.drop_all(crt.storage_key)
        return self.present(rt, gone)

    def delete_collection(
        self,
        rt: ResourceType,
        ns: str | None,
        labels: str | None,
        fields: str | None,
        opts: dict[str, Any],
    ) -> dict[str, Any]:
        listed = self.list(rt, ns, labels, fields)
        items = []
        for obj in listed["items"]:
            meta = obj["metadata"]
            try:
                items.append(self.delete(rt, meta.get("namespace", ""), meta["name"], opts)[0])
            except errors.ApiError as exc:
                if exc.code != 404:
                    raise
        return dict(listed, items=items)


def _order(obj: dict[str, Any]) -> tuple[str, str]:
    return obj["metadata"].get("namespace", ""), obj["metadata"]["name"]


def _encode_continue(rv: str, last: tuple[str, str]) -> str:
    raw = json.dumps({"v": "meta.k8s.io/v1", "rv": rv, "start": list(last)})
    return base64.urlsafe_b64encode(raw.encode()).decode()


def _decode_continue(token: str) -> tuple[str, tuple[str, str]]:
    try:
        data = json.loads(base64.urlsafe_b64decode(token.encode()))
        return str(data["rv"]), (str(data["start"][0]), str(data["start"][1]))
    except (ValueError, KeyError, IndexError, TypeError):
        raise errors.bad_request(f"invalid continue token: {token!r}") from None


def meta_deleting(obj: dict[str, Any]) -> bool:
    return bool(obj["metadata"].get("deletionTimestamp"))
