"""The bare aiogram echo bot the throughput figure is compared with: long polling with aiogram's
defaults (handle_as_tasks), no middleware, no storage, no database.

    BOT_TOKEN=... TELEGRAM_API_URL=http://127.0.0.1:PORT python -m tests.bench.echo_bot
"""

from __future__ import annotations

import asyncio
import os

from aiogram import Bot, Dispatcher
from aiogram.client.default import DefaultBotProperties
from aiogram.client.session.aiohttp import AiohttpSession
from aiogram.client.telegram import TelegramAPIServer
from aiogram.enums import ParseMode
from aiogram.types import Message


async def echo(message: Message) -> None:
    """Send the text back."""
    await message.answer(message.text or "…")


async def run() -> None:
    """Poll until SIGTERM/SIGINT."""
    session = AiohttpSession(api=TelegramAPIServer.from_base(os.environ["TELEGRAM_API_URL"]))
    bot = Bot(os.environ["BOT_TOKEN"], session=session,
              default=DefaultBotProperties(parse_mode=ParseMode.HTML))
    dp = Dispatcher()
    dp.message.register(echo)
    await dp.start_polling(bot, handle_signals=True)


if __name__ == "__main__":
    asyncio.run(run())
