"""The service's web pages: My clusters, All clusters (admins), and their live feeds.

The pages are shells rendered with the data of their first view; plain JS in
``hub_service/static/`` renders rows, calls the JSON API for every action and
follows server-sent events for live updates.
"""

from .routes import handlers, openapi_paths

__all__ = ["handlers", "openapi_paths"]
