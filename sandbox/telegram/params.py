"""A Bot API call's parameters, however they came: query string, JSON, urlencoded or
multipart bodies (and a bot's webhook answer)."""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any
from urllib.parse import parse_qsl

import aiohttp
from aiohttp import web

from sandbox.telegram.errors import bad

__all__ = ["Params", "Upload", "read_multipart", "read_params"]

# Parameters that are JSON-serialized objects: decoded when a call is recorded.
JSON_FIELDS = {
    "reply_markup",
    "entities",
    "caption_entities",
    "media",
    "reply_parameters",
    "link_preview_options",
    "allowed_updates",
    "commands",
    "scope",
    "menu_button",
}


@dataclass
class Upload:
    """A file part of a multipart request."""

    filename: str | None
    content_type: str | None
    data: bytes


class Params:
    """Request parameters from query string, JSON, urlencoded or multipart bodies."""

    def __init__(self, values: dict[str, Any], files: dict[str, Upload]) -> None:
        self.values = values
        self.files = files

    def has(self, name: str) -> bool:
        """True if the parameter is present and not empty."""
        v = self.values.get(name)
        return (v is not None and v != "") or name in self.files

    def str(self, name: str, default: str | None = None) -> str | None:
        """A string parameter."""
        v = self.values.get(name)
        if v is None:
            return default
        if isinstance(v, (dict, list)):
            return json.dumps(v)
        if isinstance(v, bool):
            return "true" if v else "false"
        return str(v)

    def int(self, name: str, default: int | None = None) -> int | None:
        """An integer parameter; 400 if it is not a number."""
        v = self.values.get(name)
        if v is None or v == "":
            return default
        if isinstance(v, bool):
            return int(v)
        try:
            return int(v)
        except (TypeError, ValueError):
            try:
                return int(float(v))
            except (TypeError, ValueError):
                raise bad(f"invalid {name} specified") from None

    def bool(self, name: str, default: bool = False) -> bool:
        """A boolean parameter (true/false/1/0)."""
        v = self.values.get(name)
        if v is None or v == "":
            return default
        if isinstance(v, bool):
            return v
        return str(v).strip().lower() in ("true", "1", "yes", "on")

    def json(self, name: str, what: str | None = None) -> Any:
        """A JSON-serialized parameter (already decoded for JSON bodies)."""
        v = self.values.get(name)
        if v is None or v == "":
            return None
        if isinstance(v, str):
            try:
                return json.loads(v)
            except ValueError:
                raise bad(f"can't parse {what or name} JSON object") from None
        return v

    def recorded(self) -> dict[str, Any]:
        """The parameters as a test reads them back: JSON fields decoded, files summarised."""
        clean: dict[str, Any] = {}
        for k, v in self.values.items():
            if k in JSON_FIELDS and isinstance(v, str):
                try:
                    v = json.loads(v)
                except ValueError:
                    pass
            clean[k] = v
        for k, up in self.files.items():
            clean[k] = f"<file {up.filename} {len(up.data)} bytes>"
        return clean


async def read_params(request: web.Request) -> Params:
    """The parameters of an HTTP call of a Bot API method."""
    values: dict[str, Any] = dict(request.query)
    files: dict[str, Upload] = {}
    if request.method in ("POST", "PUT") and request.body_exists:
        ctype = request.content_type
        if ctype == "application/json":
            try:
                body = await request.json()
            except ValueError:
                raise bad("can't parse JSON object") from None
            if not isinstance(body, dict):
                raise bad("can't parse JSON object")
            values.update(body)
        elif ctype == "multipart/form-data":
            await read_multipart(await request.multipart(), values, files)
        else:
            raw = await request.read()
            values.update(parse_qsl(raw.decode("utf-8", "replace"), keep_blank_values=True))
    return Params(values, files)


async def read_multipart(
    reader: aiohttp.MultipartReader, values: dict[str, Any], files: dict[str, Upload]
) -> None:
    """Add a multipart body's fields to `values` and its file parts to `files`."""
    while True:
        part = await reader.next()
        if part is None:
            return
        if not isinstance(part, aiohttp.BodyPartReader):
            continue
        name = part.name or ""
        data = await part.read(decode=True)
        if part.filename is not None:
            files[name] = Upload(part.filename, part.headers.get("Content-Type"), bytes(data))
        else:
            charset = part.get_charset(default="utf-8")
            values[name] = bytes(data).decode(charset, "replace")
