"""The pages' JSON and SSE routes against the real service (hub auth, local backend)."""

from __future__ import annotations

import asyncio
import json
import re

import aiohttp
import pytest
import pytest_asyncio

from tests.pages.stack import running_stack
from tests.polling import until

pytestmark = pytest.mark.asyncio(loop_scope="module")


@pytest_asyncio.fixture(scope="module", loop_scope="module")
async def stack(tmp_path_factory):
    async with running_stack(tmp_path_factory.mktemp("pagesapi")) as st:
        st.alice_cluster = await st.create("alice")
        st.bob_cluster = await st.create("bob")
        for user, name in (("alice", st.alice_cluster), ("bob", st.bob_cluster)):
            await until(lambda u=user, n=name: _is(st, u, n, "RUNNING"), 60, what=f"{name} running")
        yield st


async def _is(st, user, name, state):
    return await st.state(user, name) == state


class Events:
    """Reads ``event: snapshot`` messages from an SSE response."""

    def __init__(self, response: aiohttp.ClientResponse) -> None:
        self.response = response

    async def next_snapshot(self) -> dict:
        event, data = None, []
        async for raw in self.response.content:
            line = raw.decode().rstrip("\n")
            if line.startswith("event:"):
                event = line.partition(":")[2].strip()
            elif line.startswith("data:"):
                data.append(line.partition(":")[2].strip())
            elif line == "" and event == "snapshot":
                return json.loads("\n".join(data))
            elif line == "":
                event, data = None, []
        raise AssertionError("event stream ended")


async def test_mine_lists_only_the_callers_clusters_with_footprints(stack):
    status, mine = await stack.api("GET", "/api/v1/pages/mine", "alice")
    assert status == 200
    assert [c["name"] for c in mine["clusters"]] == [stack.alice_cluster]
    (row,) = mine["clusters"]
    assert row["username"] == "alice" and row["status"] == "RUNNING"
    assert row["cores"] >= 1 and row["memory"] > 0
    assert row["dashboard_url"] == f"/services/dask-gateway/clusters/{stack.alice_cluster}/status"
    assert [e["kind"] for e in row["events"]][-1] == "RUNNING"
    assert "tls_key" not in row and "token" not in row
    assert mine["usage"]["clusters"] == 1


async def test_overview_is_for_admins_with_totals_per_user(stack):
    status, body = await stack.api("GET", "/api/v1/admin/overview", "alice")
    assert status == 403 and body["error"] == "admin_required"
    status, overview = await stack.api("GET", "/api/v1/admin/overview", "root")
    assert status == 200
    totals = {u["name"]: u for u in overview["users"]}
    assert set(totals) == {"alice", "bob"}
    assert totals["alice"]["clusters"] == 1 and totals["bob"]["clusters"] == 1
    assert {c["name"] for c in overview["clusters"]} == {stack.alice_cluster, stack.bob_cluster}
    assert overview["total"] == 2 and overview["pages"] == 1


async def test_overview_pages_and_filters(stack):
    seen = []
    for page in (1, 2):
        status, body = await stack.api(
            "GET", f"/api/v1/admin/overview?per_page=1&page={page}", "root"
        )
        assert status == 200 and body["pages"] == 2 and body["page"] == page
        seen += [c["name"] for c in body["clusters"]]
    assert sorted(seen) == sorted([stack.alice_cluster, stack.bob_cluster])
    status, body = await stack.api("GET", "/api/v1/admin/overview?user=BO", "root")
    assert [c["username"] for c in body["clusters"]] == ["bob"]
    assert [u["name"] for u in body["users"]] == ["bob"]
    status, body = await stack.api("GET", "/api/v1/admin/overview?status=FAILED", "root")
    assert status == 200 and body["total"] == 0


@pytest.mark.parametrize(
    "query, message",
    [
        ("page=0", "page must be a positive integer"),
        ("per_page=abc", "per_page must be a positive integer"),
        ("status=SLEEPING", "SLEEPING"),
    ],
)
async def test_overview_refuses_bad_queries_with_422(stack, query, message):
    status, body = await stack.api("GET", f"/api/v1/admin/overview?{query}", "root")
    assert status == 422 and message in body["message"]


async def test_pages_refuse_non_admins_and_anonymous_browsers(stack):
    status, html = await stack.api("GET", "/admin", "alice")
    assert status == 403 and "hub admins" in html
    async with (
        aiohttp.ClientSession() as s,
        s.get(stack.address + "/", allow_redirects=False) as r,
    ):
        assert r.status == 302 and "oauth_login" in r.headers["Location"]
    status, html = await stack.api("GET", "/", "alice")
    assert status == 200 and stack.alice_cluster in html and stack.bob_cluster not in html


async def test_pages_send_a_strict_csp_and_versioned_assets(stack):
    token = await stack.token("alice")
    async with aiohttp.ClientSession() as s:
        async with s.get(stack.address + "/", headers={"Authorization": f"token {token}"}) as r:
            csp = r.headers["Content-Security-Policy"]
            html = await r.text()
        assert "script-src 'self'" in csp and "unsafe-inline" not in csp
        (js,) = re.findall(r'src="([^"]+pages\.js\?v=\w+)"', html)
        async with s.get(stack.hub.url + js) as r:
            assert r.status == 200 and "immutable" in r.headers["Cache-Control"]
            script = await r.text()
            assert not re.search(r"\.(inner|outer)HTML|insertAdjacentHTML|document\.write", script)
        async with s.get(stack.address + "/static/nope.js") as r:
            assert r.status == 404


async def test_mine_events_stream_a_new_cluster_without_polling(stack):
    token = await stack.token("alice")
    headers = {"Authorization": f"token {token}"}
    async with (
        aiohttp.ClientSession() as s,
        s.get(stack.address + "/api/v1/pages/mine/events", headers=headers) as r,
    ):
        assert r.status == 200 and r.headers["Content-Type"].startswith("text/event-stream")
        events = Events(r)
        first = await events.next_snapshot()
        assert [c["name"] for c in first["clusters"]] == [stack.alice_cluster]
        name = await stack.create("alice")
        bob_extra = await stack.create("bob")

        async def shows_new() -> dict | None:
            snap = await asyncio.wait_for(events.next_snapshot(), 30)
            return snap if name in [c["name"] for c in snap["clusters"]] else None

        snap = await until(shows_new, 60, what="the new cluster in the stream")
        assert bob_extra not in [c["name"] for c in snap["clusters"]]
        await stack.api("DELETE", f"/api/v1/clusters/{name}", "alice")

        async def gone() -> bool:
            snap = await asyncio.wait_for(events.next_snapshot(), 30)
            return name not in [c["name"] for c in snap["clusters"]]

        await until(gone, 60, what="the stopped cluster leaving the stream")
    await stack.api("DELETE", f"/api/v1/clusters/{bob_extra}", "bob")


async def test_overview_events_refuse_non_admins_before_streaming(stack):
    status, body = await stack.api("GET", "/api/v1/admin/overview/events", "alice")
    assert status == 403 and body["error"] == "admin_required"
    token = await stack.token("root")
    async with (
        aiohttp.ClientSession() as s,
        s.get(
            stack.address + "/api/v1/admin/overview/events?user=alice",
            headers={"Authorization": f"token {token}"},
        ) as r,
    ):
        snap = await asyncio.wait_for(Events(r).next_snapshot(), 30)
        assert {c["username"] for c in snap["clusters"]} == {"alice"}


async def test_cookie_requests_from_a_browser_need_the_xsrf_token(stack):
    token = await stack.token("alice")
    jar = aiohttp.CookieJar(unsafe=True)
    async with aiohttp.ClientSession(cookie_jar=jar) as s:
        async with s.get(stack.address + "/", headers={"Authorization": f"token {token}"}) as r:
            (xsrf,) = re.findall(r'data-xsrf="(\w+)"', await r.text())
        assert any(c.key == "jhub-gateway-session" for c in jar)
        url = stack.address + "/api/v1/clusters/"
        base = {"Content-Type": "application/json", "Sec-Fetch-Site": "same-origin"}
        for bad in ({}, {"X-XSRFToken": "0" * len(xsrf)}, {"X-XSRFToken": "é"}):
            async with s.post(url, data=b"{}", headers={**base, **bad}) as r:
                assert r.status == 403 and (await r.json())["error"] == "xsrf"
        async with s.post(url, data=b"{}", headers={**base, "X-XSRFToken": xsrf}) as r:
            assert r.status == 201
            name = (await r.json())["name"]
        async with s.delete(
            f"{url}{name}", headers={"Sec-Fetch-Site": "same-origin", "X-XSRFToken": xsrf}
        ) as r:
            assert r.status == 204


async def test_admin_stops_all_of_one_users_clusters(stack):
    status, body = await stack.api("DELETE", "/api/v1/admin/users/bob/clusters", "alice")
    assert status == 403
    extra = await stack.create("bob")
    status, body = await stack.api("DELETE", "/api/v1/admin/users/bob/clusters", "root")
    assert status == 200 and body == {"user": "bob", "stopped": 2}

    async def bob_has_none() -> bool:
        _, overview = await stack.api("GET", "/api/v1/admin/overview?user=bob", "root")
        return overview["total"] == 0

    await until(bob_has_none, 60, what="bob's clusters stopped")
    assert await stack.state("bob", extra) in (None, "STOPPED")
    assert await stack.state("alice", stack.alice_cluster) == "RUNNING"
