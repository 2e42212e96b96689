"""The recording session answers as the Bot API does, so what a handler meets in the fast tier
is what it meets in production: ids and echoes, Telegram's refusals, files, callback answers."""

from __future__ import annotations

import pytest
from aiogram.exceptions import TelegramBadRequest, TelegramForbiddenError
from aiogram.types import BufferedInputFile, InlineKeyboardButton, InlineKeyboardMarkup

from tests.fast.chat import FastChat, FastTelegram


async def test_messages_edits_and_files_come_back_as_telegram_sends_them(
        telegram: FastTelegram, user: FastChat) -> None:
    bot = telegram.bot
    keyboard = InlineKeyboardMarkup(inline_keyboard=[[InlineKeyboardButton(
        text="Go", callback_data="go")]])
    sent = await bot.send_message(user.id, "<b>Hello</b> &amp; bye", reply_markup=keyboard)
    assert sent.message_id == 1 and sent.chat.id == user.id and sent.text == "Hello & bye"
    assert sent.entities[0].type == "bold"
    assert sent.reply_markup.inline_keyboard[0][0].callback_data == "go"
    assert user.last_text == "Hello & bye" and user.last_message.buttons == [["Go"]]
    edited = await bot.edit_message_text("Bye", chat_id=user.id, message_id=sent.message_id)
    assert edited.text == "Bye" and edited.reply_markup is None  # an edit drops the buttons
    with pytest.raises(TelegramBadRequest, match="message is not modified"):
        await bot.edit_message_text("Bye", chat_id=user.id, message_id=sent.message_id)

    document = await bot.send_document(user.id, BufferedInputFile(b"a,b\n", "x.csv"),
                                       caption="The file")
    assert document.document.file_name == "x.csv" and document.caption == "The file"
    assert user.last_message.document.data == b"a,b\n"
    assert [r.method for r in telegram.session.requests] == [
        "sendMessage", "editMessageText", "editMessageText", "sendDocument"]


async def test_telegram_refusals_reach_the_bot_as_exceptions(telegram: FastTelegram,
                                                             user: FastChat) -> None:
    bot = telegram.bot
    with pytest.raises(TelegramBadRequest, match="can't parse entities"):
        await bot.send_message(user.id, "<b>unclosed")
    with pytest.raises(TelegramBadRequest, match="message is too long"):
        await bot.send_message(user.id, "x" * 4097)
    with pytest.raises(TelegramBadRequest, match="chat not found"):
        await bot.send_message(42, "nobody there")
    user.block()
    with pytest.raises(TelegramForbiddenError, match="blocked"):
        await bot.send_message(user.id, "hello")
    assert user.messages == []


async def test_a_pressed_button_is_answered_once(telegram: FastTelegram, user: FastChat) -> None:
    await user.send("/language")
    await user.press("🇬🇧 English")
    answer = await user.expect_answer()
    with pytest.raises(TelegramBadRequest, match="query is too old"):
        await telegram.bot.answer_callback_query(answer["query_id"], text="again")
