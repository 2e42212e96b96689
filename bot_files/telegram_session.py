"""The Bot API session of the bot: aiogram's aiohttp session with two per-request costs taken
out (measured on the light update: together about a tenth of its CPU)."""

from __future__ import annotations

from typing import Any

from aiogram import Bot
from aiogram.client.session.aiohttp import AiohttpSession
from aiogram.methods import Response, TelegramMethod
from aiogram.methods.base import TelegramType
from aiohttp import BytesPayload, FormData
from yarl import URL

FORM_CONTENT_TYPE = "application/x-www-form-urlencoded"

# Response[X] for every X the bot has asked for. pydantic keeps parametrised generic models in
# a weak cache: after each garbage collection the next request rebuilt Response[Message]
# (a full schema build, milliseconds of CPU) while a user waited for the answer.
_response_models: dict[Any, type[Response[Any]]] = {}


class BotSession(AiohttpSession):
    """aiogram's AiohttpSession, cheaper per request:

    - a request without files goes as one urlencoded body quoted in C (yarl, which aiohttp
      uses for its URLs), not through aiohttp's FormData (urllib's quoting, a Python call per
      byte of the text, and a multipart writer with a fresh uuid4 that is never used), and
      its empty fields are left out before aiogram prepares the values, not after;
    - the response model of each method is built once and kept (see `_response_models`).

    Requests with files are built by aiogram as before."""

    def build_form_data(self, bot: Bot, method: TelegramMethod[TelegramType]) -> FormData:
        """The request body: urlencoded fields, or aiogram's multipart form when files go."""
        fields: dict[str, str] = {}
        files: dict[str, Any] = {}
        # Without the None fields (a keyboard button has eight): aiogram drops them anyway,
        # after walking them in Python.
        for key, value in method.model_dump(warnings=False, exclude_none=True).items():
            prepared = self.prepare_value(value, bot=bot, files=files)
            if prepared:
                fields[key] = str.__str__(prepared)  # a str enum (ParseMode.HTML) as its value
        if files:
            return super().build_form_data(bot, method)
        body = URL.build(query=fields).raw_query_string.encode()
        # aiohttp takes any payload as `data`; FormData is what the base class declares.
        return BytesPayload(body, content_type=FORM_CONTENT_TYPE)  # type: ignore[return-value]

    def check_response(self, bot: Bot, method: TelegramMethod[TelegramType], status_code: int,
                       content: str) -> Response[TelegramType]:
        """aiogram's check, with the response model kept alive for the next request."""
        returning = method.__returning__
        if returning not in _response_models:
            _response_models[returning] = Response[returning]  # type: ignore[valid-type]
        return super().check_response(bot, method, status_code, content)
