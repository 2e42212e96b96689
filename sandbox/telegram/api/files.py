"""Files: getFile, and the InputFile a sending method takes (upload, attach://, file_id, URL)."""

from __future__ import annotations

import mimetypes
from typing import TYPE_CHECKING, Any

import aiohttp

from sandbox.telegram.api.registry import method
from sandbox.telegram.errors import bad

if TYPE_CHECKING:
    from sandbox.telegram.files import FileRecord
    from sandbox.telegram.params import Params
    from sandbox.telegram.world import BotState, World

__all__ = ["input_file", "media_content"]

MAX_DOWNLOAD = 20 * 1024 * 1024


@method("getFile")
async def get_file(world: World, bot: BotState, params: Params) -> Any:
    """A file's path for download (files over 20 MB are too big, as for bots)."""
    rec = world.files.by_id.get(params.str("file_id") or "")
    if rec is None:
        raise bad("invalid file_id")
    if len(rec.data) > MAX_DOWNLOAD:
        raise bad("file is too big")
    return {
        "file_id": rec.file_id,
        "file_unique_id": rec.file_unique_id,
        "file_size": len(rec.data),
        "file_path": rec.file_path,
    }


async def input_file(
    world: World, params: Params, field_name: str, value: Any, kind: str
) -> tuple[FileRecord, bool]:
    """Resolve an InputFile (upload part, attach://, file_id or URL); (record, is_new)."""
    upload = params.files.get(field_name)
    if upload is None and isinstance(value, str) and value.startswith("attach://"):
        upload = params.files.get(value[len("attach://") :])
        if upload is None:
            raise bad("wrong file identifier/HTTP URL specified")
    if upload is not None:
        if not upload.data:
            raise bad("file must be non-empty")
        name = upload.filename
        if kind == "document" and name == field_name:
            name = "document"
        mime = upload.content_type
        if mime in (None, "application/octet-stream") and name:
            mime = mimetypes.guess_type(name)[0] or mime
        return world.files.register(upload.data, kind, name, mime), True
    if not isinstance(value, str) or not value:
        raise bad(f"there is no {kind} in the request")
    if value.startswith(("http://", "https://")):
        data = await _fetch_url(world, value)
        name = value.rsplit("/", 1)[-1].split("?")[0] or None
        mime = mimetypes.guess_type(name)[0] if name else None
        return world.files.register(data, kind, name, mime), True
    rec = world.files.by_id.get(value)
    if rec is None:
        raise bad("wrong file identifier/HTTP URL specified")
    if (rec.kind == "photo") != (kind == "photo"):
        have = rec.kind.capitalize()
        raise bad(f"can't use file of type {have} as {kind.capitalize()}")
    return rec, False


def media_content(
    world: World, rec: FileRecord, kind: str, caption: str, entities: list[dict[str, Any]]
) -> dict[str, Any]:
    """The photo or document fields of a message carrying this file, with its caption."""
    content: dict[str, Any] = {}
    if kind == "photo":
        content["photo"] = world.files.photo_sizes(rec)
    else:
        content["document"] = world.files.document_dict(rec)
    if caption:
        content["caption"] = caption
        if entities:
            content["caption_entities"] = entities
    return content


async def _fetch_url(world: World, url: str) -> bytes:
    try:
        async with world.http().get(url, timeout=aiohttp.ClientTimeout(total=10)) as resp:
            if resp.status != 200:
                raise bad("failed to get HTTP URL content")
            return await resp.read()
    except (aiohttp.ClientError, TimeoutError):
        raise bad("failed to get HTTP URL content") from None
