"""Validate requests and responses against CVAT's own OpenAPI schema (openapi-core)."""

from __future__ import annotations

import copy
import json
import logging
import threading
from pathlib import Path
from typing import Any
from urllib.parse import parse_qsl

import yaml
from openapi_core import Config, OpenAPI
from openapi_core.datatypes import RequestParameters
from openapi_core.templating.paths.exceptions import PathNotFound
from openapi_core.templating.responses.exceptions import ResponseNotFound
from openapi_core.validation.request.exceptions import SecurityValidationError
from werkzeug.datastructures import Headers, ImmutableMultiDict

log = logging.getLogger(__name__)

DEFAULT_SCHEMA = Path(__file__).resolve().parent / "reference" / "cvat-openapi-2.73.0.yml"
CVAT_JSON = "application/vnd.cvat+json"

_cache: dict[str, OpenAPI] = {}
_lock = threading.Lock()


def _patch(node: Any) -> Any:
    """Rewrite `{allOf: [$ref], nullable: true}` as `anyOf` with a null branch (in place)."""
    if isinstance(node, dict):
        all_of = node.get("allOf")
        if node.get("nullable") and isinstance(all_of, list) and len(all_of) == 1:
            rest = {k: v for k, v in node.items() if k not in ("allOf", "nullable")}
            node.clear()
            node.update(rest)
            node["anyOf"] = [all_of[0], {"type": "object", "nullable": True, "enum": [None]}]
        for value in node.values():
            _patch(value)
    elif isinstance(node, list):
        for value in node:
            _patch(value)
    return node


def _allow_page_size_all(spec: dict[str, Any]) -> None:
    """CVAT accepts `page_size=all` although the schema declares an integer."""
    for item in spec.get("paths", {}).values():
        for op in item.values():
            for param in op.get("parameters", []) if isinstance(op, dict) else []:
                if param.get("name") == "page_size" and param.get("in") == "query":
                    param["schema"] = {"type": "string", "pattern": "^(all|[0-9]+)$"}


def _add_slash_variants(spec: dict[str, Any]) -> None:
    paths = spec.get("paths", {})
    for path in list(paths):
        other = path[:-1] if path.endswith("/") else path + "/"
        if other not in paths and path != "/":
            paths[other] = copy.deepcopy(paths[path])
            for op in paths[other].values():
                if isinstance(op, dict) and "operationId" in op:
                    op["operationId"] += "_alt_slash"


def load_openapi(path: Path | str = DEFAULT_SCHEMA) -> OpenAPI:
    """Load, patch and cache the OpenAPI object (once per process and path)."""
    key = str(path)
    with _lock:
        if key in _cache:
            return _cache[key]
        with open(path, encoding="utf-8") as fh:
            spec = yaml.load(fh, Loader=getattr(yaml, "CSafeLoader", yaml.SafeLoader))
        _patch(spec)
        _allow_page_size_all(spec)
        _add_slash_variants(spec)
        config = Config(
            spec_validator_cls=None,
            extra_media_type_deserializers={CVAT_JSON: _json_loads},
        )
        api = OpenAPI.from_dict(spec, config=config)
        _cache[key] = api
        return api


def _json_loads(data: bytes | str, **_: Any) -> Any:
    return json.loads(data)


class OARequest:
    """openapi-core request protocol over captured aiohttp request data."""

    def __init__(
        self,
        host_url: str,
        path: str,
        method: str,
        query: str,
        headers: dict[str, str],
        cookies: dict[str, str],
        body: bytes | None,
        content_type: str,
    ) -> None:
        self.host_url = host_url
        self.path = path
        self.method = method.lower()
        self.body = body
        self.content_type = content_type
        self.parameters = RequestParameters(
            query=ImmutableMultiDict(parse_qsl(query, keep_blank_values=True)),
            header=Headers(list(headers.items())),
            cookie=ImmutableMultiDict(list(cookies.items())),
        )


class OAResponse:
    """openapi-core response protocol over a finished aiohttp response."""

    def __init__(self, status: int, content_type: str, headers: dict[str, str], data: bytes):
        self.status_code = status
        self.content_type = content_type
        self.headers = Headers(list(headers.items()))
        self.data = data


def _messages(exc: Exception) -> str:
    parts = [str(exc)]
    cause = exc.__cause__
    schema_errors = getattr(cause, "schema_errors", None) or getattr(exc, "schema_errors", None)
    if schema_errors:
        parts.extend(
            f"{'/'.join(str(p) for p in e.absolute_path)}: {e.message}" for e in schema_errors
        )
    elif cause is not None:
        parts.append(str(cause))
        for sub in getattr(cause, "schema_errors", []) or []:
            parts.append(str(sub.message))
    return "; ".join(parts)


def validate_request(
    api: OpenAPI, req: OARequest, status: int, anonymous_ok: bool = False
) -> list[str]:
    """Return request violations.

    Not counted: missing credentials the server answered 401/403 (or that CVAT accepts
    anonymously although the schema lists no empty requirement, e.g. /api/server/about), and
    body errors in requests the server rejected with 400 (deliberately invalid input).
    """
    try:
        api.validate_request(req)
    except PathNotFound:
        return []
    except SecurityValidationError as exc:
        if status in (401, 403) or anonymous_ok:
            return []
        return [_messages(exc)]
    except Exception as exc:  # noqa: BLE001 - openapi-core raises many error types
        if status == 400:
            log.debug("rejected invalid request %s %s: %s", req.method, req.path, exc)
            return []
        return [_messages(exc)]
    return []


def validate_response(api: OpenAPI, req: OARequest, resp: OAResponse) -> list[str]:
    """Return response violations for documented statuses with a body."""
    if not resp.data and resp.status_code in (200, 201, 202, 204):
        # CVAT answers some documented statuses with an empty body (Upload-Start, 204s)
        return []
    try:
        api.validate_response(req, resp)
    except (PathNotFound, ResponseNotFound):
        return []
    except Exception as exc:  # noqa: BLE001 - openapi-core raises many error types
        return [_messages(exc)]
    return []
