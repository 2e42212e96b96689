"""Tests of the Telegram Bot API stand-in (sandbox/telegram) over real HTTP and with aiogram."""

from __future__ import annotations

import asyncio
import contextlib
import html
import json
import struct
import time
import zlib
from collections.abc import AsyncIterator, Callable
from typing import Any

import aiohttp
import pytest
from aiogram import Bot, Dispatcher, F
from aiogram.client.default import DefaultBotProperties
from aiogram.client.session.aiohttp import AiohttpSession
from aiogram.client.telegram import TelegramAPIServer
from aiogram.exceptions import (
    TelegramBadRequest,
    TelegramConflictError,
    TelegramForbiddenError,
    TelegramNetworkError,
    TelegramNotFound,
    TelegramRetryAfter,
    TelegramServerError,
    TelegramUnauthorizedError,
)
from aiogram.filters import Command
from aiogram.types import (
    BotCommand,
    BotCommandScopeChat,
    BufferedInputFile,
    CallbackQuery,
    InlineKeyboardButton,
    InlineKeyboardMarkup,
    InputMediaDocument,
    InputMediaPhoto,
    KeyboardButton,
    Message,
    ReplyKeyboardMarkup,
    Update,
)
from aiohttp import web
from hypothesis import given, settings
from hypothesis import strategies as st

from sandbox.telegram import BotMessage, TelegramServer, format_text
from sandbox.telegram.html import EntityParseError, u16len

TOKEN = "123456:AAHdqTcvCH1vGWJxfSeofSAs0K5PALDsaw"
OTHER_TOKEN = "654321:BBHdqTcvCH1vGWJxfSeofSAs0K5PALDsaw"


def png(width: int, height: int) -> bytes:
    """A valid PNG of the given size (one grey pixel row repeated)."""

    def chunk(kind: bytes, data: bytes) -> bytes:
        return (
            struct.pack(">I", len(data))
            + kind
            + data
            + struct.pack(">I", zlib.crc32(kind + data) & 0xFFFFFFFF)
        )

    raw = b"".join(b"\x00" + b"\x80" * width for _ in range(height))
    ihdr = struct.pack(">IIBBBBB", width, height, 8, 0, 0, 0, 0)
    return (
        b"\x89PNG\r\n\x1a\n"
        + chunk(b"IHDR", ihdr)
        + chunk(b"IDAT", zlib.compress(raw))
        + chunk(b"IEND", b"")
    )


@pytest.fixture
async def server() -> AsyncIterator[TelegramServer]:
    srv = TelegramServer(webhook_retry_delays=(0.05, 0.05, 0.1))
    await srv.start()
    srv.add_bot(TOKEN)
    try:
        yield srv
    finally:
        await srv.stop()


@pytest.fixture
async def bot(server: TelegramServer) -> AsyncIterator[Bot]:
    session = AiohttpSession(api=TelegramAPIServer.from_base(server.base_url))
    b = Bot(TOKEN, session=session, default=DefaultBotProperties(parse_mode="HTML"))
    try:
        yield b
    finally:
        await b.session.close()


@pytest.fixture
async def http() -> AsyncIterator[aiohttp.ClientSession]:
    async with aiohttp.ClientSession() as session:
        yield session


async def call(
    http: aiohttp.ClientSession,
    server: TelegramServer,
    method: str,
    token: str = TOKEN,
    **params: Any,
) -> tuple[int, dict[str, Any]]:
    """POST a JSON body to the server; (status, decoded answer)."""
    async with http.post(f"{server.base_url}/bot{token}/{method}", json=params) as resp:
        return resp.status, await resp.json()


async def eventually(condition: Callable[[], bool], within: float = 5.0) -> None:
    """Poll ``condition`` until it holds (fail after ``within`` seconds)."""
    for _ in range(int(within / 0.02)):
        if condition():
            return
        await asyncio.sleep(0.02)
    raise AssertionError("condition not met in time")


# --------------------------------------------------------------------------- basics


async def test_get_me_auth_and_unknown_method(
    server: TelegramServer, http: aiohttp.ClientSession, bot: Bot
) -> None:
    status, body = await call(http, server, "getMe")
    assert status == 200 and body["ok"] is True
    me = body["result"]
    assert me["is_bot"] is True and me["username"] == "candidate_test_bot"
    assert {"can_join_groups", "can_read_all_group_messages", "supports_inline_queries"} <= set(me)
    assert (await bot.get_me()).first_name == "Candidate Test"

    status, body = await call(http, server, "getMe", token=OTHER_TOKEN)
    assert (status, body) == (401, {"ok": False, "error_code": 401, "description": "Unauthorized"})
    status, body = await call(http, server, "getMe", token="garbage")
    assert status == 401
    status, body = await call(http, server, "fooBar")
    assert (status, body["description"]) == (404, "Not Found")
    with pytest.raises(TelegramNotFound):
        await bot.session.make_request(bot, _FakeMethod())  # type: ignore[arg-type]

    any_server = TelegramServer(accept_any_token=True)
    await any_server.start()
    try:
        status, body = await call(http, any_server, "getMe", token=OTHER_TOKEN)
        assert status == 200 and body["result"]["id"] == 654321
        status, _ = await call(http, any_server, "getMe", token="1:short")
        assert status == 401
    finally:
        await any_server.stop()
    assert server.bot_requests_count >= 4
    assert server.counters["getMe"] >= 2


class _FakeMethod:
    """Just enough of a TelegramMethod for make_request to hit an unknown method."""

    __api_method__ = "noSuchMethod"
    __returning__ = bool

    def model_dump(self, warnings: bool = False) -> dict[str, Any]:
        return {}


async def test_accepts_json_urlencoded_query_and_multipart(
    server: TelegramServer, http: aiohttp.ClientSession
) -> None:
    user = server.user(1001, "Anna")
    base = f"{server.base_url}/bot{TOKEN}"
    async with http.post(f"{base}/sendMessage", json={"chat_id": 1001, "text": "json"}) as r:
        assert r.status == 200
    async with http.post(f"{base}/sendMessage", data={"chat_id": "1001", "text": "form"}) as r:
        assert r.status == 200
    async with http.get(f"{base}/sendMessage", params={"chat_id": "1001", "text": "query"}) as r:
        assert r.status == 200
    form = aiohttp.FormData()
    form.add_field("chat_id", "1001")
    form.add_field("text", "<b>multi</b>part")
    form.add_field("parse_mode", "HTML")
    form.add_field(
        "reply_markup", json.dumps({"inline_keyboard": [[{"text": "Go", "callback_data": "go"}]]})
    )
    async with http.post(f"{base}/SENDMESSAGE", data=form) as r:
        body = await r.json()
        assert r.status == 200, body
    assert body["result"]["entities"] == [{"offset": 0, "length": 5, "type": "bold"}]
    assert [m.text for m in user.messages] == ["json", "form", "query", "multipart"]
    assert user.messages[-1].buttons == [["Go"]]
    assert user.messages[-1].html == "<b>multi</b>part"
    assert [m.message_id for m in user.messages] == [1, 2, 3, 4]
    names = [c[0] for c in server.calls]
    assert names.count("sendMessage") == 4
    assert server.calls_of("sendmessage")[-1]["reply_markup"]["inline_keyboard"][0][0]["text"]


# --------------------------------------------------------------------------- messages & errors


async def test_send_edit_delete_and_errors_with_aiogram(server: TelegramServer, bot: Bot) -> None:
    user = server.user(1001, "Anna", username="anna", language_code="ru")
    kb = InlineKeyboardMarkup(
        inline_keyboard=[
            [InlineKeyboardButton(text="Get a test task", callback_data="task:get")],
            [InlineKeyboardButton(text="Site", url="https://example.org")],
        ]
    )
    msg = await bot.send_message(1001, "Hello <b>Anna</b> &amp; co", reply_markup=kb)
    assert msg.text == "Hello Anna & co"
    assert msg.entities and msg.entities[0].type == "bold" and msg.entities[0].offset == 6
    assert msg.chat.type == "private" and msg.chat.username == "anna"
    assert msg.reply_markup is not None
    seen = await user.expect_message("Anna")
    assert isinstance(seen, BotMessage) and seen.kind == "text"
    assert seen.buttons == [["Get a test task"], ["Site"]]
    assert seen.button_data == {"Get a test task": "task:get"}
    assert seen.url_buttons == {"Site": "https://example.org"}

    edited = await bot.edit_message_text(
        text="Images 3/12", chat_id=1001, message_id=msg.message_id
    )
    assert isinstance(edited, Message) and edited.reply_markup is None and edited.edit_date
    e = await user.expect_edit("Images 3/12")
    assert e.buttons == [] and e.edited

    with pytest.raises(TelegramBadRequest) as err:
        await bot.edit_message_text(text="Images 3/12", chat_id=1001, message_id=msg.message_id)
    assert err.value.message == (
        "Bad Request: message is not modified: specified new message content and reply markup "
        "are exactly the same as a current content and reply markup of the message"
    )
    again = await bot.edit_message_reply_markup(
        chat_id=1001, message_id=msg.message_id, reply_markup=kb
    )
    assert isinstance(again, Message) and again.reply_markup is not None
    assert (await user.expect_edit()).buttons == [["Get a test task"], ["Site"]]

    cases: list[tuple[Any, str]] = [
        (
            bot.edit_message_text(text="x", chat_id=1001, message_id=999),
            "Bad Request: message to edit not found",
        ),
        (bot.send_message(1001, "   "), "Bad Request: message text is empty"),
        (bot.send_message(1001, "a" * 4097), "Bad Request: message is too long"),
        (bot.send_message(424242, "hi"), "Bad Request: chat not found"),
        (bot.delete_message(1001, 999), "Bad Request: message to delete not found"),
        (
            bot.send_message(1001, "Hello<foo>"),
            'Bad Request: can\'t parse entities: Unsupported start tag "foo" at byte offset 5',
        ),
        (
            bot.send_message(
                1001,
                "x",
                reply_markup=InlineKeyboardMarkup(
                    inline_keyboard=[[InlineKeyboardButton(text="b", callback_data="x" * 65)]]
                ),
            ),
            "Bad Request: BUTTON_DATA_INVALID",
        ),
        (
            bot.send_message(
                1001,
                "x",
                reply_markup=InlineKeyboardMarkup(
                    inline_keyboard=[[InlineKeyboardButton(text="b", callback_data="ж" * 33)]]
                ),
            ),
            "Bad Request: BUTTON_DATA_INVALID",
        ),
        (
            bot.answer_callback_query("12345"),
            "Bad Request: query is too old and response timeout expired or query ID is invalid",
        ),
    ]
    for coro, expected in cases:
        with pytest.raises(TelegramBadRequest) as err:
            await coro
        assert err.value.message == expected
    assert await bot.delete_message(1001, msg.message_id) is True
    assert user.current(msg.message_id).deleted  # type: ignore[union-attr]
    assert [e.kind for e in user.chat_history] == ["message", "edit", "edit", "delete"]
    await user.expect_nothing(within=0.05)


async def test_malformed_markup_and_raw_errors(
    server: TelegramServer, http: aiohttp.ClientSession
) -> None:
    server.user(1001, "Anna")
    for markup, fragment in [
        ("{not json", "can't parse reply keyboard markup JSON object"),
        ([1, 2], "object expected as reply markup"),
        ({"inline_keyboard": [[{"text": "plain"}]]}, "text buttons are unallowed"),
        ({"inline_keyboard": {"a": 1}}, "Array of Arrays"),
        ({"inline_keyboard": [[{"text": "x", "callback_data": ""}]]}, "BUTTON_DATA_INVALID"),
        ({"inline_keyboard": [[{"text": "x", "url": "not a url"}]]}, "is invalid"),
        ({"something": True}, "can't parse reply keyboard markup JSON object"),
    ]:
        status, body = await call(
            http, server, "sendMessage", chat_id=1001, text="t", reply_markup=markup
        )
        assert status == 400 and body["error_code"] == 400, markup
        assert fragment in body["description"], (markup, body)
    status, body = await call(
        http,
        server,
        "sendMessage",
        chat_id=1001,
        text="pick",
        reply_markup={"keyboard": [["Yes", {"text": "No"}]], "resize_keyboard": True},
    )
    assert status == 200 and "reply_markup" not in body["result"]
    user = server.user(1001)
    assert user.messages[-1].reply_keyboard == [["Yes", "No"]]
    status, body = await call(
        http,
        server,
        "sendMessage",
        chat_id=1001,
        text="bye",
        reply_markup={"remove_keyboard": True},
    )
    assert status == 200 and user.messages[-1].remove_keyboard


# --------------------------------------------------------------------------- HTML


@pytest.mark.parametrize(
    ("source", "text", "types"),
    [
        ("<b>bold <i>both</i></b> plain", "bold both plain", ["bold", "italic"]),
        ("<strong>s</strong><em>e</em><ins>u</ins><del>d</del>", "seud", None),
        ('<span class="tg-spoiler">hidden</span>', "hidden", ["spoiler"]),
        ("<tg-spoiler>x</tg-spoiler>", "x", ["spoiler"]),
        ('<a href="https://e.org/?a=1&amp;b=2">link</a>', "link", ["text_link"]),
        ('<pre><code class="language-python">x = 1</code></pre>', "x = 1", ["pre"]),
        ("<blockquote expandable>q</blockquote>", "q", ["expandable_blockquote"]),
        ("a &lt;b&gt; &amp; &quot;c&quot; &#65;&#x42;", 'a <b> & "c" AB', []),
        ('<tg-emoji emoji-id="5368324170671202286">👍</tg-emoji>', "👍", ["custom_emoji"]),
    ],
)
def test_html_valid(source: str, text: str, types: list[str] | None) -> None:
    plain, entities = format_text(source, "HTML")
    assert plain == text
    if types is not None:
        assert [e["type"] for e in entities] == types
    if source.startswith("<a"):
        assert entities[0]["url"] == "https://e.org/?a=1&b=2"
    if source.startswith("<pre>"):
        assert entities[0]["language"] == "python"


@pytest.mark.parametrize(
    ("source", "error"),
    [
        ("Hello<foo>", 'Unsupported start tag "foo" at byte offset 5'),
        ("Привет<foo>", 'Unsupported start tag "foo" at byte offset 12'),
        ("<b>unclosed", 'Can\'t find end tag corresponding to start tag "b"'),
        ("<b>x</i>", 'Unmatched end tag at byte offset 4, expected "</b>", found "</i>"'),
        ("1 < 2", 'Unsupported start tag "" at byte offset 2'),
        ("x</b>", "Unexpected end tag at byte offset 1"),
        ("a <b", "Unclosed start tag at byte offset 2"),
        ("Q&A", 'Character "&" at byte offset 1'),
        ("&nbsp;", 'Character "&" at byte offset 0'),
        ("<span>x</span>", 'Tag "span" must have class "tg-spoiler"'),
    ],
)
def test_html_invalid(source: str, error: str) -> None:
    with pytest.raises(EntityParseError) as err:
        format_text(source, "HTML")
    assert str(err.value).startswith(error)


def test_html_length_after_parsing_and_utf16() -> None:
    plain, _ = format_text("<b>" + "a" * 4096 + "</b>", "HTML")
    assert u16len(plain) == 4096
    plain, _ = format_text("&amp;" * 4096, "HTML")
    assert plain == "&" * 4096
    assert u16len("😀" * 2049) == 4098
    plain, ents = format_text("😀 <b>x</b>", "HTML")
    assert ents == [{"offset": 3, "length": 1, "type": "bold"}]
    assert format_text("*bold* 1\\.5", "MarkdownV2") == (
        "bold 1.5",
        [{"offset": 0, "length": 4, "type": "bold"}],
    )
    with pytest.raises(EntityParseError, match="reserved"):
        format_text("1.5", "MarkdownV2")


async def test_length_is_checked_after_parsing_over_http(server: TelegramServer, bot: Bot) -> None:
    server.user(1001, "Anna")
    ok = await bot.send_message(1001, "<b>" + "a" * 4096 + "</b>")
    assert len(ok.text or "") == 4096
    ok = await bot.send_message(1001, "&lt;" * 4096)
    assert ok.text == "<" * 4096
    with pytest.raises(TelegramBadRequest, match="message is too long"):
        await bot.send_message(1001, "😀" * 2049)
    with pytest.raises(TelegramBadRequest, match="message caption is too long"):
        await bot.send_photo(1001, BufferedInputFile(png(2, 2), "p.png"), caption="c" * 1025)


_SAFE_TEXT = st.text(
    alphabet=st.characters(
        blacklist_categories=("Cs", "Cc"), blacklist_characters="\x85\u2028\u2029"
    ),
    max_size=300,
).filter(lambda s: s.strip() != "")


@settings(max_examples=300, deadline=None)
@given(_SAFE_TEXT)
def test_html_escape_round_trip(text: str) -> None:
    plain, entities = format_text(html.escape(text), "HTML")
    assert plain == text.strip()
    assert all(e["type"] in {"bot_command", "url", "mention", "hashtag"} for e in entities)


# --------------------------------------------------------------------------- a real aiogram bot


async def test_dispatcher_echo_bot_with_users(server: TelegramServer, bot: Bot) -> None:
    dp = Dispatcher()

    @dp.message(Command("start"))
    async def start(message: Message) -> None:
        kb = InlineKeyboardMarkup(
            inline_keyboard=[
                [InlineKeyboardButton(text="Get a test task", callback_data="task")],
                [InlineKeyboardButton(text="Help me", callback_data="help")],
            ]
        )
        await message.answer(
            f"Hi, <b>{html.escape(message.from_user.first_name)}</b>!", reply_markup=kb
        )  # type: ignore[union-attr]

    @dp.callback_query(F.data == "task")
    async def task(query: CallbackQuery) -> None:
        await query.message.edit_text("Your task: <code>annotate</code>")  # type: ignore[union-attr]
        await query.answer("Task issued", show_alert=True)

    @dp.callback_query()
    async def other(query: CallbackQuery) -> None:
        await query.answer(f"data={query.data}")

    @dp.message(F.document)
    async def doc(message: Message) -> None:
        file = await message.bot.get_file(message.document.file_id)  # type: ignore[union-attr]
        data = await message.bot.download_file(file.file_path)  # type: ignore[union-attr,arg-type]
        await message.answer(f"got {message.document.file_name} {len(data.read())} bytes")  # type: ignore[union-attr]

    @dp.message(F.text)
    async def echo(message: Message) -> None:
        await message.answer(html.escape(message.text or ""))

    poller = asyncio.create_task(dp.start_polling(bot, handle_signals=False, polling_timeout=2))
    try:
        await server.wait_polling()
        anna = server.user(1001, "Anna", username="anna")
        sent = await anna.send("/start")
        assert sent["entities"] == [{"offset": 0, "length": 6, "type": "bot_command"}]
        greeting = await anna.expect_message("Hi, Anna")
        assert greeting.entities[0]["type"] == "bold"
        with pytest.raises(AssertionError, match="buttons seen"):
            await anna.press("No such button")
        qid = await anna.press("Get a test task")
        assert (await anna.expect_edit("annotate")).buttons == []
        answer = await anna.expect_answer()
        assert answer == {**answer, "text": "Task issued", "show_alert": True, "query_id": qid}
        await anna.press_data("hr:del:123", message_id=greeting.message_id)
        assert (await anna.expect_answer("hr:del:123"))["show_alert"] is False
        await anna.send("<not a tag> & co")
        assert (await anna.expect_message()).text == "<not a tag> & co"
        await anna.send_document(b"%PDF-1.4 hello", "cv.pdf", "application/pdf")
        assert "got cv.pdf 14 bytes" in (await anna.expect_message("got cv.pdf")).text

        users = [server.user(2000 + i, f"U{i}") for i in range(60)]
        await asyncio.gather(*(u.send("/start") for u in users))
        await asyncio.gather(*(u.expect_message("Hi, U") for u in users))
        await asyncio.gather(*(u.press("Help") for u in users))
        answers = await asyncio.gather(*(u.expect_answer("data=help") for u in users))
        assert len(answers) == 60
        await anna.expect_nothing(within=0.1)
        with pytest.raises(AssertionError) as err:
            await anna.expect_message("never", timeout=0.1)
        assert "never" in str(err.value) and "last chat events" in str(err.value)
    finally:
        await dp.stop_polling()
        with contextlib.suppress(asyncio.CancelledError, RuntimeError):
            await asyncio.wait_for(poller, 5)


async def test_user_message_kinds_parse_as_aiogram_updates(
    server: TelegramServer, http: aiohttp.ClientSession
) -> None:
    anna = server.user(1001, "Anna", last_name="K", username="anna")
    boris = server.user(1002, "Boris")
    await anna.send("hello")
    await anna.send_photo(png(400, 200), caption="look")
    await anna.send_sticker()
    await anna.send_voice()
    await anna.forward_from(boris, text="fwd")
    await anna.forward_from({"id": 7, "is_bot": False, "first_name": "Ext"})
    await anna.edit(1, "hello again")
    anna.block()
    anna.unblock()
    status, body = await call(http, server, "getUpdates")
    assert status == 200
    updates = [Update.model_validate(u) for u in body["result"]]
    ids = [u.update_id for u in updates]
    assert ids == sorted(ids) and len(set(ids)) == len(ids) == 9
    photo = updates[1].message.photo  # type: ignore[union-attr]
    assert photo is not None and (photo[-1].width, photo[-1].height) == (400, 200)
    assert photo[0].width == 320
    assert updates[2].message.sticker is not None  # type: ignore[union-attr]
    assert updates[3].message.voice is not None  # type: ignore[union-attr]
    fwd = updates[4].message
    assert fwd.forward_origin.sender_user.id == 1002  # type: ignore[union-attr]
    assert fwd.forward_from.first_name == "Boris"  # type: ignore[union-attr]
    assert updates[6].edited_message.text == "hello again"  # type: ignore[union-attr]
    assert updates[7].my_chat_member.new_chat_member.status == "kicked"  # type: ignore[union-attr]
    assert updates[1].message.chat.last_name == "K"  # type: ignore[union-attr]

    # a user's files can be fetched by the bot
    file_id = photo[-1].file_id
    status, body = await call(http, server, "getFile", file_id=file_id)
    path = body["result"]["file_path"]
    async with http.get(f"{server.base_url}/file/bot{TOKEN}/{path}") as resp:
        assert resp.status == 200 and await resp.read() == png(400, 200)
    async with http.get(f"{server.base_url}/file/bot{TOKEN}/nope/x") as resp:
        assert resp.status == 404


# --------------------------------------------------------------------------- polling


async def test_get_updates_long_poll_offset_limit(
    server: TelegramServer, http: aiohttp.ClientSession
) -> None:
    anna = server.user(1001, "Anna")
    t0 = time.monotonic()
    status, body = await call(http, server, "getUpdates", timeout=1)
    assert body["result"] == [] and 0.9 < time.monotonic() - t0 < 2

    async def later() -> None:
        await asyncio.sleep(0.2)
        await anna.send("wake up")

    task = asyncio.create_task(later())
    t0 = time.monotonic()
    status, body = await call(http, server, "getUpdates", timeout=10)
    await task
    assert time.monotonic() - t0 < 1.5
    first_id = body["result"][0]["update_id"]
    for i in range(5):
        await anna.send(f"m{i}")
    _, body = await call(http, server, "getUpdates", offset=first_id + 1, limit=2)
    assert [u["message"]["text"] for u in body["result"]] == ["m0", "m1"]
    _, body = await call(http, server, "getUpdates", offset=first_id + 3)
    assert [u["message"]["text"] for u in body["result"]] == ["m2", "m3", "m4"]
    await anna.press_data("x") if anna.messages else None
    _, body = await call(
        http, server, "getUpdates", offset=first_id + 6, allowed_updates=["callback_query"]
    )
    assert body["result"] == []
    await anna.send("filtered out")
    assert server.pending_updates() == 0

    # a newer long poll terminates the older one with 409
    old = asyncio.create_task(call(http, server, "getUpdates", timeout=5, allowed_updates=[]))
    await asyncio.sleep(0.1)
    newer = asyncio.create_task(call(http, server, "getUpdates", timeout=0.3))
    status, body = await old
    assert status == 409 and body["description"].startswith("Conflict: terminated by other")
    await newer

    # stop() answers a pending long poll at once
    pending = asyncio.create_task(call(http, server, "getUpdates", timeout=30))
    await asyncio.sleep(0.1)
    t0 = time.monotonic()
    await server.stop()
    status, body = await pending
    assert status == 200 and body["result"] == [] and time.monotonic() - t0 < 1.5


# --------------------------------------------------------------------------- webhooks


async def test_webhook_delivery_secret_retry_and_conflict(
    server: TelegramServer, http: aiohttp.ClientSession, bot: Bot
) -> None:
    received: list[tuple[str | None, dict[str, Any]]] = []
    fail_first = {"n": 2}

    async def hook(request: web.Request) -> web.Response:
        if fail_first["n"] > 0:
            fail_first["n"] -= 1
            return web.Response(status=500)
        received.append(
            (request.headers.get("X-Telegram-Bot-Api-Secret-Token"), await request.json())
        )
        return web.json_response({})

    app = web.Application()
    app.router.add_post("/hook", hook)
    runner = web.AppRunner(app)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
    try:
        anna = server.user(1001, "Anna")
        await anna.send("before webhook")
        assert await bot.set_webhook(f"http://127.0.0.1:{port}/hook", secret_token="s3cr3t")
        with pytest.raises(TelegramConflictError, match="webhook is active"):
            await bot.get_updates()
        for i in range(5):
            await anna.send(f"w{i}")
        await eventually(lambda: len(received) >= 6)
        assert all(secret == "s3cr3t" for secret, _ in received)
        texts = [u["message"]["text"] for _, u in received]
        assert texts == ["before webhook", "w0", "w1", "w2", "w3", "w4"]
        info = await bot.get_webhook_info()
        assert info.url.endswith("/hook") and info.pending_update_count == 0
        assert (
            info.last_error_message == "Wrong response from the webhook: 500 Internal Server Error"
        )

        # a dead endpoint: retried a bounded number of times, reported, then dropped
        await bot.set_webhook("http://127.0.0.1:9/dead")
        await anna.send("lost")
        await asyncio.sleep(0.05)
        info = await bot.get_webhook_info()
        assert info.pending_update_count == 1
        await eventually(lambda: server.counters["webhook_dropped"] >= 1)
        info = await bot.get_webhook_info()
        assert info.last_error_message == "Connection refused" and info.pending_update_count == 0

        assert await bot.delete_webhook()
        await anna.send("polling again")
        updates = await bot.get_updates(timeout=1)
        assert updates[-1].message.text == "polling again"  # type: ignore[union-attr]
    finally:
        await runner.cleanup()


# --------------------------------------------------------------------------- flood & failures


async def test_injected_errors_and_rate_limits(server: TelegramServer, bot: Bot) -> None:
    user = server.user(1001, "Anna")
    server.inject_errors(method="sendMessage", status=429, retry_after=1, count=2)
    for _ in range(2):
        with pytest.raises(TelegramRetryAfter) as err:
            await bot.send_message(1001, "x")
        assert err.value.retry_after == 1
        assert "Original description: Too Many Requests: retry after 1" in err.value.message
    await bot.send_message(1001, "through")
    assert [m.text for m in user.messages] == ["through"]

    server.inject_errors(method="getUpdates", status=502, count=1)
    with pytest.raises(TelegramServerError, match="Bad Gateway"):
        await bot.get_updates()
    server.inject_errors(method="getUpdates", drop=True)
    with pytest.raises(TelegramNetworkError):
        await bot.get_updates()
    assert await bot.get_updates() == []

    user.block()
    with pytest.raises(TelegramForbiddenError, match="Forbidden: bot was blocked by the user"):
        await bot.send_message(1001, "x")
    user.unblock()

    server.rate_limits(per_chat_per_second=1, burst=2, global_per_second=30)
    await bot.send_message(1001, "1")
    await bot.send_message(1001, "2")
    with pytest.raises(TelegramRetryAfter) as err:
        await bot.send_message(1001, "3")
    assert err.value.retry_after >= 1
    server.rate_limits(enabled=False)
    await bot.send_message(1001, "4")
    assert server.errors["sendMessage:429"] == 3


async def test_unauthorized_in_aiogram(server: TelegramServer) -> None:
    session = AiohttpSession(api=TelegramAPIServer.from_base(server.base_url))
    stranger = Bot(OTHER_TOKEN, session=session)
    try:
        with pytest.raises(TelegramUnauthorizedError):
            await stranger.get_me()
    finally:
        await session.close()


# --------------------------------------------------------------------------- files


async def test_files_round_trip(server: TelegramServer, bot: Bot) -> None:
    user = server.user(1001, "Anna")
    payload = bytes(range(256)) * 40
    msg = await bot.send_document(
        1001, BufferedInputFile(payload, "report.xlsx"), caption="<i>Report</i>"
    )
    doc = msg.document
    assert doc is not None and doc.file_name == "report.xlsx" and doc.file_size == len(payload)
    assert doc.mime_type == "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet"
    assert msg.caption == "Report" and msg.caption_entities[0].type == "italic"  # type: ignore[index]
    file = await bot.get_file(doc.file_id)
    data = await bot.download_file(file.file_path)  # type: ignore[arg-type]
    assert data is not None and data.read() == payload
    seen = await user.expect_message("Report")
    assert seen.kind == "document" and seen.document is not None
    assert seen.document.data == payload and seen.html == "<i>Report</i>"

    again = await bot.send_document(1001, doc.file_id)
    assert again.document.file_unique_id == doc.file_unique_id  # type: ignore[union-attr]
    assert (await user.expect_message()).document.data == payload  # type: ignore[union-attr]
    with pytest.raises(TelegramBadRequest, match="wrong file identifier"):
        await bot.send_document(1001, "no-such-file-id")

    photo = await bot.send_photo(1001, BufferedInputFile(png(640, 480), "p.png"))
    assert (photo.photo[-1].width, photo.photo[-1].height) == (640, 480)  # type: ignore[index]
    assert (await user.expect_message()).photo == png(640, 480)
    odd = await bot.send_photo(1001, BufferedInputFile(b"not an image", "x.bin"))
    assert odd.photo[-1].width == 0  # type: ignore[index]
    assert (await user.expect_message()).photo == b"not an image"

    album = await bot.send_media_group(
        1001,
        [
            InputMediaPhoto(media=BufferedInputFile(png(10, 20), "a.png"), caption="<b>A</b>"),
            InputMediaPhoto(media=photo.photo[-1].file_id),  # type: ignore[index]
        ],
    )
    assert len(album) == 2 and album[0].media_group_id == album[1].media_group_id
    assert album[0].caption == "A"
    items = [await user.expect_message(), await user.expect_message()]
    assert [i.kind for i in items] == ["media_group_item"] * 2
    docs = await bot.send_media_group(
        1001,
        [
            InputMediaDocument(media=BufferedInputFile(b"1", "a.txt")),
            InputMediaDocument(media=BufferedInputFile(b"2", "b.txt")),
        ],
    )
    assert [d.document.file_name for d in docs] == ["a.txt", "b.txt"]  # type: ignore[union-attr]
    with pytest.raises(TelegramBadRequest):
        await bot.send_media_group(1001, [InputMediaPhoto(media=photo.photo[-1].file_id)])  # type: ignore[index]


# --------------------------------------------------------------------------- misc methods


async def test_commands_actions_chat_and_reply_keyboard(server: TelegramServer, bot: Bot) -> None:
    user = server.user(1001, "Anna", username="anna")
    await bot.set_my_commands([BotCommand(command="start", description="Start")])
    await bot.set_my_commands(
        [BotCommand(command="hr", description="HR panel")],
        scope=BotCommandScopeChat(chat_id=1001),
        language_code="ru",
    )
    assert [c.command for c in await bot.get_my_commands()] == ["start"]
    scoped = await bot.get_my_commands(scope=BotCommandScopeChat(chat_id=1001), language_code="ru")
    assert [c.command for c in scoped] == ["hr"]
    assert await bot.get_my_commands(scope=BotCommandScopeChat(chat_id=1001)) == []
    assert await bot.delete_my_commands()
    assert await bot.get_my_commands() == []
    with pytest.raises(TelegramBadRequest, match="BOT_COMMAND_INVALID"):
        await bot.set_my_commands([BotCommand(command="Bad Command", description="x")])

    assert await bot.send_chat_action(1001, "typing")
    assert user.actions == ["typing"]
    with pytest.raises(TelegramBadRequest):
        await bot.send_chat_action(1001, "dancing")
    chat = await bot.get_chat(1001)
    assert chat.type == "private" and chat.username == "anna"
    with pytest.raises(TelegramBadRequest, match="chat not found"):
        await bot.get_chat(5)
    assert await bot.set_chat_menu_button()

    kb = ReplyKeyboardMarkup(keyboard=[[KeyboardButton(text="Yes"), KeyboardButton(text="No")]])
    await bot.send_message(1001, "Choose", reply_markup=kb)
    m = await user.expect_message("Choose")
    assert m.reply_keyboard == [["Yes", "No"]] and m.buttons == []
    reply = await bot.send_message(1001, "quoted", reply_to_message_id=m.message_id)
    assert reply.reply_to_message.message_id == m.message_id  # type: ignore[union-attr]
    with pytest.raises(TelegramBadRequest, match="message to be replied not found"):
        await bot.send_message(1001, "x", reply_to_message_id=999)


async def test_answer_twice_and_many_users_fast(server: TelegramServer, bot: Bot) -> None:
    users = [server.user(5000 + i, f"P{i}") for i in range(300)]
    kb = InlineKeyboardMarkup(
        inline_keyboard=[[InlineKeyboardButton(text="Press", callback_data="p")]]
    )
    await asyncio.gather(*(bot.send_message(u.id, "go", reply_markup=kb) for u in users))
    t0 = time.monotonic()
    qids = await asyncio.gather(*(u.press("Press") for u in users))
    assert len(set(qids)) == 300 and time.monotonic() - t0 < 2
    updates = await bot.get_updates(limit=100)
    assert len(updates) == 100
    assert await bot.answer_callback_query(qids[0], text="ok")
    with pytest.raises(TelegramBadRequest, match="query is too old"):
        await bot.answer_callback_query(qids[0])
    assert (await users[0].expect_answer("ok"))["text"] == "ok"


async def test_edit_caption_and_webhook_reply_method(
    server: TelegramServer, bot: Bot, http: aiohttp.ClientSession
) -> None:
    user = server.user(1001, "Anna")
    photo = await bot.send_photo(1001, BufferedInputFile(png(3, 3), "p.png"), caption="old")
    edited = await bot.edit_message_caption(
        chat_id=1001, message_id=photo.message_id, caption="<b>new</b>"
    )
    assert isinstance(edited, Message) and edited.caption == "new"
    assert (await user.expect_edit("new")).kind == "photo"
    with pytest.raises(TelegramBadRequest, match="no text in the message to edit"):
        await bot.edit_message_text(text="t", chat_id=1001, message_id=photo.message_id)
    status, body = await call(http, server, "editMessageText", inline_message_id="AAA", text="x")
    assert status == 400 and body["description"] == "Bad Request: message to edit not found"

    async def hook(request: web.Request) -> web.Response:
        update = await request.json()
        chat = update["message"]["chat"]["id"]
        return web.json_response({"method": "sendMessage", "chat_id": chat, "text": "from reply"})

    app = web.Application()
    app.router.add_post("/hook", hook)
    runner = web.AppRunner(app)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
    try:
        await bot.set_webhook(f"http://127.0.0.1:{port}/hook")
        await user.send("hi")
        assert (await user.expect_message("from reply")).text == "from reply"
    finally:
        await runner.cleanup()
