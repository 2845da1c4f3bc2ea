"""The OpenAPI 3 description of the service's HTTP API (tests keep it true)."""

from __future__ import annotations

from typing import Any

from jhub_gateway import __version__

_ERROR = {"$ref": "#/components/schemas/Error"}


def _resp(description: str, schema: dict | None = None) -> dict[str, Any]:
    body: dict[str, Any] = {"description": description}
    if schema is not None:
        body["content"] = {"application/json": {"schema": schema}}
    return body


def _errors(*codes: int) -> dict[str, Any]:
    text = {
        400: "Malformed request",
        401: "Not authenticated",
        403: "Not allowed",
        404: "Not found",
        409: "Cluster not in a state to do this",
        413: "Body too large",
        422: "Invalid values",
        503: "A dependency is unavailable",
    }
    return {str(c): _resp(text[c], _ERROR) for c in codes}


_NAME = {"name": "name", "in": "path", "required": True, "schema": {"type": "string"}}
_USER: list[dict[str, list[str]]] = [{"gatewayAuth": []}]
_CLUSTER = {"$ref": "#/components/schemas/Cluster"}
_SCALE_RESULT = {
    "type": "object",
    "properties": {"ok": {"type": "boolean"}, "msg": {"type": ["string", "null"]}},
}


def openapi_document(prefix: str) -> dict[str, Any]:
    p = prefix.rstrip("/")
    paths: dict[str, Any] = {
        "/": {
            "get": {
                "summary": "The caller's page (HTML): clusters and dashboard links",
                "security": _USER,
                "responses": {
                    "200": _resp("HTML page"),
                    "302": _resp("To the hub login"),
                    **_errors(401, 403),
                },
            }
        },
        "/api/health": {
            "get": {
                "summary": "Health with named checks",
                "security": [],
                "responses": {"200": _resp("Healthy"), "503": _resp("A check fails")},
            }
        },
        "/api/version": {
            "get": {
                "summary": "Server version",
                "security": [],
                "responses": {"200": _resp("Version", {"type": "object"})},
            }
        },
        "/metrics": {
            "get": {
                "summary": "Prometheus metrics (text exposition format)",
                "description": "Needs a hub token with the read:metrics scope, the configured "
                "bearer token (ServiceMetrics.token), or ServiceMetrics.public.",
                "security": _USER,
                "responses": {"200": _resp("Metrics"), **_errors(401, 403)},
            }
        },
        "/api/openapi.json": {
            "get": {
                "summary": "This document",
                "security": [],
                "responses": {"200": _resp("OpenAPI document")},
            }
        },
        "/api/v1/options": {
            "get": {
                "summary": "Cluster options the caller may set",
                "security": _USER,
                "responses": {"200": _resp("Option specification"), **_errors(401, 403)},
            }
        },
        "/api/v1/users/me": {
            "get": {
                "summary": "Identity, limits and usage",
                "security": _USER,
                "responses": {"200": _resp("The caller"), **_errors(401, 403)},
            }
        },
        "/api/v1/clusters/": {
            "get": {
                "summary": "The caller's clusters",
                "security": _USER,
                "parameters": [
                    {
                        "name": "status",
                        "in": "query",
                        "schema": {"type": "string"},
                        "description": "Comma-separated states; default pending,running",
                    }
                ],
                "responses": {
                    "200": _resp(
                        "Clusters by name", {"type": "object", "additionalProperties": _CLUSTER}
                    ),
                    **_errors(401, 403, 422),
                },
            },
            "post": {
                "summary": "Create a cluster",
                "security": _USER,
                "requestBody": {
                    "content": {
                        "application/json": {
                            "schema": {
                                "type": "object",
                                "properties": {"cluster_options": {"type": "object"}},
                                "additionalProperties": False,
                            }
                        }
                    }
                },
                "responses": {
                    "201": _resp(
                        "Created", {"type": "object", "properties": {"name": {"type": "string"}}}
                    ),
                    **_errors(400, 401, 403, 413, 422),
                },
            },
        },
        "/api/v1/clusters/{name}": {
            "get": {
                "summary": "One cluster; ?wait long-polls until it is RUNNING, STOPPED or FAILED",
                "security": _USER,
                "parameters": [
                    _NAME,
                    {"name": "wait", "in": "query", "schema": {"type": "string"}},
                ],
                "responses": {"200": _resp("The cluster", _CLUSTER), **_errors(401, 403, 404)},
            },
            "delete": {
                "summary": "Stop a cluster (asynchronous)",
                "security": _USER + [{"clusterToken": []}],
                "parameters": [_NAME],
                "responses": {"204": _resp("Stopping"), **_errors(401, 403)},
            },
        },
        "/api/v1/clusters/{name}/scale": {
            "post": {
                "summary": "Scale to a worker count",
                "security": _USER,
                "parameters": [_NAME],
                "requestBody": {
                    "content": {
                        "application/json": {
                            "schema": {
                                "type": "object",
                                "required": ["count"],
                                "properties": {"count": {"type": "integer", "minimum": 0}},
                            }
                        }
                    }
                },
                "responses": {
                    "200": _resp("Accepted (ok=false with msg when clamped)", _SCALE_RESULT),
                    **_errors(400, 401, 403, 404, 409, 422),
                },
            }
        },
        "/api/v1/clusters/{name}/adapt": {
            "post": {
                "summary": "Adaptive scaling",
                "security": _USER,
                "parameters": [_NAME],
                "requestBody": {
                    "content": {
                        "application/json": {
                            "schema": {
                                "type": "object",
                                "properties": {
                                    "minimum": {"type": ["integer", "null"]},
                                    "maximum": {"type": ["integer", "null"]},
                                    "active": {"type": "boolean"},
                                },
                            }
                        }
                    }
                },
                "responses": {
                    "200": _resp("Accepted", _SCALE_RESULT),
                    **_errors(400, 401, 403, 404, 409, 422),
                },
            }
        },
        "/api/v1/clusters/{name}/events": {
            "get": {
                "summary": "Lifecycle events with reasons",
                "description": "With Accept: text/event-stream, a server-sent event stream: "
                "every event so far, then each new one (event: cluster-event, with an id for "
                "Last-Event-ID), ending with event: end once the cluster has stopped.",
                "security": _USER,
                "parameters": [_NAME],
                "responses": {"200": _resp("Events"), **_errors(400, 401, 403, 404)},
            }
        },
        "/api/v1/clusters/{name}/heartbeat": {
            "post": {
                "summary": "Scheduler heartbeat (internal)",
                "security": [{"clusterToken": []}],
                "parameters": [_NAME],
                "responses": {"200": _resp("Applied"), **_errors(400, 401, 404, 422)},
            }
        },
        "/api/v1/admin/clusters/": {
            "get": {
                "summary": "Every active cluster (admins)",
                "security": _USER,
                "responses": {"200": _resp("Clusters by name"), **_errors(401, 403)},
            }
        },
        "/api/v1/dashboard-auth": {
            "get": {
                "summary": "Forward-auth check for dashboards (called by Traefik)",
                "security": _USER,
                "responses": {"200": _resp("Allowed"), **_errors(401, 403, 404)},
            }
        },
    }
    from .pages import openapi_paths  # the pages document their own routes

    paths.update(openapi_paths())
    return {
        "openapi": "3.1.0",
        "info": {"title": "jhub-gateway", "version": __version__},
        "servers": [{"url": p or "/"}],
        "paths": paths,
        "components": {
            "securitySchemes": {
                "gatewayAuth": {
                    "type": "http",
                    "scheme": "basic",
                    "description": "Basic, 'jupyterhub <token>', 'token <token>' or the session cookie",
                },
                "clusterToken": {"type": "http", "scheme": "token"},
            },
            "schemas": {
                "Error": {
                    "type": "object",
                    "required": ["error", "message"],
                    "properties": {"error": {"type": "string"}, "message": {"type": "string"}},
                },
                "Cluster": {
                    "type": "object",
                    "required": [
                        "name",
                        "status",
                        "dashboard_route",
                        "start_time",
                        "stop_time",
                        "options",
                        "tls_cert",
                        "tls_key",
                    ],
                    "properties": {
                        "name": {"type": "string"},
                        "status": {"enum": ["PENDING", "RUNNING", "STOPPING", "STOPPED", "FAILED"]},
                        "dashboard_route": {"type": ["string", "null"]},
                        "start_time": {"type": "integer"},
                        "stop_time": {"type": ["integer", "null"]},
                        "options": {"type": "object"},
                        "tls_cert": {"type": ["string", "null"]},
                        "tls_key": {"type": ["string", "null"]},
                        "username": {"type": "string"},
                        "reason": {"type": "string"},
                        "message": {"type": "string"},
                        "workers": {"type": "object"},
                        "adaptive": {
                            "description": "adaptive bounds while the cluster scales "
                            "adaptively, else null (extended answers only)",
                            "type": ["object", "null"],
                            "properties": {
                                "minimum": {"type": "integer"},
                                "maximum": {"type": ["integer", "null"]},
                            },
                        },
                    },
                },
            },
        },
    }
