"""Files the stand-in knows: what bots upload and users send, by file_id and by download path."""

from __future__ import annotations

import itertools
import mimetypes
import secrets
import struct
from dataclasses import dataclass
from typing import Any

__all__ = ["FileRecord", "FileStore", "image_size"]

_ID_PREFIXES = {"photo": "AgACAgIAAxkBAA", "document": "BQACAgIAAxkBAA"}
_FOLDERS = {"photo": "photos", "document": "documents", "voice": "voice"}


@dataclass
class FileRecord:
    """A file known to the server (uploaded by a bot or sent by a user)."""

    file_id: str
    file_unique_id: str
    data: bytes
    kind: str
    file_name: str | None
    mime_type: str | None
    file_path: str
    width: int = 0
    height: int = 0


class FileStore:
    """Every file of the server: `by_id` for getFile and messages, `by_path` for downloads."""

    def __init__(self) -> None:
        self.by_id: dict[str, FileRecord] = {}
        self.by_path: dict[str, FileRecord] = {}
        self._seq = itertools.count(1)

    def register(
        self,
        data: bytes,
        kind: str,
        file_name: str | None = None,
        mime_type: str | None = None,
    ) -> FileRecord:
        """Store new bytes as a file of this kind (photo, document, voice, sticker...)."""
        file_id, unique = self._new_file_id(kind)
        folder = _FOLDERS.get(kind, kind + "s")
        ext = ""
        if file_name and "." in file_name:
            ext = file_name.rsplit(".", 1)[1]
        elif kind == "photo":
            ext = "jpg"
        path = f"{folder}/file_{len(self.by_path)}{'.' + ext if ext else ''}"
        rec = FileRecord(file_id, unique, data, kind, file_name, mime_type, path)
        if kind == "photo":
            rec.width, rec.height = image_size(data)
        self.by_id[file_id] = rec
        self.by_path[path] = rec
        return rec

    def register_photo(self, data: bytes) -> list[dict[str, Any]]:
        """Store a photo; its PhotoSize list (a thumbnail first when it is large)."""
        return self.photo_sizes(self.register(data, "photo"))

    def register_document(
        self, data: bytes, file_name: str | None, mime_type: str | None
    ) -> dict[str, Any]:
        """Store a document (MIME type guessed from the name if not given); its Document."""
        if mime_type is None and file_name:
            mime_type = mimetypes.guess_type(file_name)[0]
        rec = self.register(data, "document", file_name, mime_type or "application/octet-stream")
        return self.document_dict(rec)

    def photo_sizes(self, rec: FileRecord) -> list[dict[str, Any]]:
        """The PhotoSize list Telegram shows for a photo: a 320 px thumbnail, then the original."""
        sizes = []
        w, h = rec.width, rec.height
        if max(w, h) > 320:
            scale = 320 / max(w, h)
            thumb = self.register(rec.data, "photo")
            thumb.width, thumb.height = max(1, round(w * scale)), max(1, round(h * scale))
            sizes.append(
                {
                    "file_id": thumb.file_id,
                    "file_unique_id": thumb.file_unique_id,
                    "file_size": len(rec.data),
                    "width": thumb.width,
                    "height": thumb.height,
                }
            )
        sizes.append(
            {
                "file_id": rec.file_id,
                "file_unique_id": rec.file_unique_id,
                "file_size": len(rec.data),
                "width": w,
                "height": h,
            }
        )
        return sizes

    @staticmethod
    def document_dict(rec: FileRecord) -> dict[str, Any]:
        """The Document object of a stored file."""
        doc: dict[str, Any] = {"file_id": rec.file_id, "file_unique_id": rec.file_unique_id}
        if rec.file_name:
            doc["file_name"] = rec.file_name
        if rec.mime_type:
            doc["mime_type"] = rec.mime_type
        doc["file_size"] = len(rec.data)
        return doc

    def _new_file_id(self, kind: str) -> tuple[str, str]:
        n = next(self._seq)
        prefix = _ID_PREFIXES.get(kind, "CAACAgIAAxkBAA")
        return f"{prefix}{n:06d}{secrets.token_urlsafe(24)}", f"AQAD{n:06d}{secrets.token_hex(4)}"


def image_size(data: bytes) -> tuple[int, int]:
    """Width and height from a PNG or JPEG header, else (0, 0)."""
    if data[:8] == b"\x89PNG\r\n\x1a\n" and len(data) >= 24:
        w, h = struct.unpack(">II", data[16:24])
        return w, h
    if data[:2] == b"\xff\xd8":
        i = 2
        n = len(data)
        while i + 9 < n:
            if data[i] != 0xFF:
                i += 1
                continue
            marker = data[i + 1]
            if marker in (0xD8, 0x01) or 0xD0 <= marker <= 0xD7:
                i += 2
                continue
            seg_len = struct.unpack(">H", data[i + 2 : i + 4])[0]
            if 0xC0 <= marker <= 0xCF and marker not in (0xC4, 0xC8, 0xCC):
                h, w = struct.unpack(">HH", data[i + 5 : i + 9])
                return w, h
            i += 2 + seg_len
    return 0, 0
