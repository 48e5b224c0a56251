"""The OpenAPI 3.1 description of the HTTP API, served at ``/api/openapi.json``."""

from __future__ import annotations

from typing import Any

OPENAPI: dict[str, Any] = {
    "openapi": "3.1.0",
    "info": {"title": "search_service", "version": "0.1.0"},
    "paths": {},
}
