"""The session cookie read straight from the Cookie header, and the https decision."""

from __future__ import annotations

from http.cookies import SimpleCookie

import pytest
from tornado.httputil import HTTPHeaders, HTTPServerRequest, RequestStartLine
from tornado.web import create_signed_value

from jhub_gateway.hub_service.session import COOKIE_NAME, is_https, session_cookie


class _Handler:
    """What session_cookie uses of a RequestHandler, with Tornado's own cookie parsing."""

    def __init__(self, **headers: str) -> None:
        self.request = HTTPServerRequest(
            start_line=RequestStartLine("GET", "/", "HTTP/1.1"),
            headers=HTTPHeaders({"Host": "gw", **headers}),
        )

    def get_cookie(self, name: str) -> str | None:
        morsel = self.request.cookies.get(name)
        return morsel.value if morsel is not None else None


def _as_set_by_tornado(value: str) -> str:
    cookie: SimpleCookie = SimpleCookie()
    cookie[COOKIE_NAME] = value  # set_cookie quotes values the same way
    return cookie[COOKIE_NAME].OutputString()


SIGNED = create_signed_value(b"secret", COOKIE_NAME, '{"n": "alice"}').decode()


@pytest.mark.parametrize(
    "header",
    [
        _as_set_by_tornado(SIGNED),
        f"_xsrf=abc; {_as_set_by_tornado(SIGNED)}; jupyterhub-session-id=123",
        f"x{COOKIE_NAME}=nope; {COOKIE_NAME}-2=nope; {_as_set_by_tornado(SIGNED)}",
        f"{COOKIE_NAME}=first; {_as_set_by_tornado(SIGNED)}",  # the last one wins
        f"{COOKIE_NAME}=plain",
        f'{COOKIE_NAME}="with \\"escapes\\""',
        f"{COOKIE_NAME}=",
        f"x{COOKIE_NAME}=only-a-longer-name",
        "other=1",
    ],
)
def test_reads_what_tornado_reads(header: str) -> None:
    handler = _Handler(Cookie=header)
    assert session_cookie(handler) == handler.get_cookie(COOKIE_NAME)  # type: ignore[arg-type]


def test_the_signed_value_survives_quoting() -> None:
    assert session_cookie(_Handler(Cookie=_as_set_by_tornado(SIGNED))) == SIGNED  # type: ignore[arg-type]
    assert session_cookie(_Handler()) is None  # type: ignore[arg-type]


@pytest.mark.parametrize(
    "headers, https",
    [
        ({}, False),
        ({"X-Forwarded-Proto": "https"}, True),
        ({"X-Forwarded-Proto": "http"}, False),
        ({"X-Forwarded-Proto": "http, https"}, True),  # the nearest proxy's word
        ({"X-Scheme": "http", "X-Forwarded-Proto": "https"}, False),  # as Tornado's xheaders
    ],
)
def test_https_is_what_traefik_saw(headers: dict[str, str], https: bool) -> None:
    assert is_https(_Handler(**headers).request) is https
