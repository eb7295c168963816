"""A valid OpenAPI document: schemas inlined through ``openapi_extra`` keep their ``$defs`` as components.

Routes that validate their raw body themselves (for speed and one error shape) declare the body with
``Model.model_json_schema()``, whose nested models are ``#/$defs/X``: references that do not resolve inside an
OpenAPI document. They are moved to ``#/components/schemas`` here, once, when the document is first built.
"""

from __future__ import annotations

from typing import Any

from fastapi import FastAPI
from fastapi.openapi.utils import get_openapi

_DEFS = "#/$defs/"
_COMPONENTS = "#/components/schemas/"


def _hoist(node: Any, components: dict[str, Any]) -> Any:
    if isinstance(node, dict):
        defs = node.pop("$defs", None)
        if isinstance(defs, dict):
            for name, schema in defs.items():
                components.setdefault(name, _hoist(schema, components))
        for key, value in list(node.items()):
            if key == "$ref" and isinstance(value, str) and value.startswith(_DEFS):
                node[key] = _COMPONENTS + value[len(_DEFS) :]
            else:
                node[key] = _hoist(value, components)
    elif isinstance(node, list):
        return [_hoist(item, components) for item in node]
    return node


def _errors_as_json(document: dict[str, Any]) -> None:
    """Error answers are JSON even on a route whose success is HTML or text (FastAPI gives them the route's type)."""
    for path in document.get("paths", {}).values():
        for operation in path.values():
            for status, response in operation.get("responses", {}).items():
                content = response.get("content") if status[:1] in "45" else None
                if not content or "application/json" in content:
                    continue
                schemas = [media.get("schema", {}) for media in content.values()]
                if any(str(schema.get("$ref", "")).endswith("/ErrorResponse") for schema in schemas):
                    response["content"] = {"application/json": {"schema": schemas[0]}}


def install_openapi(app: FastAPI) -> None:
    def openapi() -> dict[str, Any]:
        if app.openapi_schema is None:
            document = get_openapi(title=app.title, version=app.version, routes=app.routes)
            components = document.setdefault("components", {}).setdefault("schemas", {})
            hoisted: dict[str, Any] = {}
            _hoist(document, hoisted)
            for name, schema in hoisted.items():
                components.setdefault(name, schema)
            _errors_as_json(document)
            app.openapi_schema = document
        return app.openapi_schema

    app.openapi = openapi  # type: ignore[method-assign]
