"""Where the API lives: the route prefix and the OpenAPI document's path, in one place below the
dispatcher and the OpenAPI document that both use them."""

from __future__ import annotations

__all__ = ["OPENAPI_PATH", "PREFIX"]

PREFIX = "/api/studio/v1/expert_jobs/"
"""Every route of the API starts with this (the spec's collection path, trailing slash included)."""
OPENAPI_PATH = "/openapi.json"
"""Where the OpenAPI document is served (no credentials needed)."""
