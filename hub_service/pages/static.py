"""The pages' own CSS and JS, read once; served with a content hash so browsers cache them."""

from __future__ import annotations

import hashlib
from pathlib import Path

from tornado import web

from ..handlers.base import BaseHandler

STATIC_DIR = Path(__file__).resolve().parent.parent / "static"
_TYPES = {".js": "text/javascript; charset=UTF-8", ".css": "text/css; charset=UTF-8"}


def _load() -> dict[str, tuple[bytes, str, str]]:
    files = {}
    for path in sorted(STATIC_DIR.iterdir()):
        if path.suffix in _TYPES:
            body = path.read_bytes()
            files[path.name] = (body, _TYPES[path.suffix], hashlib.sha256(body).hexdigest()[:12])
    return files


ASSETS = _load()


def asset_url(prefix: str, name: str) -> str:
    """The versioned URL of asset ``name`` (a changed file gets a new URL)."""
    return f"{prefix.rstrip('/')}/static/{name}?v={ASSETS[name][2]}"


class StaticHandler(BaseHandler):
    async def get(self, name: str) -> None:
        asset = ASSETS.get(name)
        if asset is None:
            raise web.HTTPError(404, f"no such asset: {name[:60]}")
        body, content_type, digest = asset
        self.set_header("Content-Type", content_type)
        self.set_header("X-Content-Type-Options", "nosniff")
        if self.get_query_argument("v", None) == digest:
            self.set_header("Cache-Control", "public, max-age=31536000, immutable")
        else:
            self.set_header("Cache-Control", "no-cache")
        self.finish(body)
