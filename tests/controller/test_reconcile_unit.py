"""Pure tests of the reconciler's helpers (no emulator)."""

from __future__ import annotations

from jhub_gateway.controller.secrets import new_credentials


def test_new_credentials_are_fresh_and_redacted() -> None:
    a = new_credentials("ns.c1")
    b = new_credentials("ns.c1")
    assert a.api_token != b.api_token
    assert len(a.api_token) == 64
    assert "BEGIN CERTIFICATE" in a.tls_cert
    assert "PRIVATE KEY" in a.tls_key
    assert a.api_token not in repr(a)
    assert "PRIVATE KEY" not in repr(a)


def test_condition_transition_time_moves_only_on_flip() -> None:
    from jhub_gateway.controller.status import set_condition, status_changed

    c1 = set_condition([], "Ready", False, "Starting", "m", "t1")
    c2 = set_condition(c1, "Ready", False, "Starting", "m2", "t2")
    assert c2[0]["lastTransitionTime"] == "t1"
    c3 = set_condition(c2, "Ready", True, "Running", "ok", "t3")
    assert c3 == [
        {
            "type": "Ready",
            "status": "True",
            "reason": "Running",
            "message": "ok",
            "lastTransitionTime": "t3",
        }
    ]
    assert not status_changed({"phase": "Running", "x": 1}, {"phase": "Running"})
    assert status_changed(None, {"phase": "Running"})
