"""A local stand-in for Iterable's REST API. See server.py."""
