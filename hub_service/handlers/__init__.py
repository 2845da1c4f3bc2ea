"""Tornado request handlers, one module per resource."""
