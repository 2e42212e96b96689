"""Steps a person takes in a chat with the bot, written once for both tiers: a `FastChat`
(tests/fast/) and a `TelegramUser` of the stand-in read and act alike."""

from __future__ import annotations

import asyncio

from db import Database
from tests.fast.chat import Person

GENERIC_ERROR = "something went wrong on my side"


async def open_menu(hr: Person) -> None:
    """/hr and the HR menu appears."""
    await hr.send("/hr")
    menu = await hr.expect_message("HR menu")
    assert menu.buttons[0] == ["📊 All candidates"]


async def find(hr: Person, query: str) -> None:
    """HR menu → Find a candidate → the query."""
    await open_menu(hr)
    await hr.press("🔎 Find a candidate")
    await hr.expect_message("Send a name, @username")
    await hr.send(query)


async def whitelist(db: Database, *users: Person, role: str = "admin") -> None:
    """Put these people on the HR list with this role."""
    for person in users:
        await db.execute("INSERT INTO trainingdata_whitelist (telegram_id) VALUES (%s)",
                         (person.id,))
        await db.execute("INSERT INTO hr_preferences (telegram_id, role) VALUES (%s, %s)",
                         (person.id, role))


async def bad_inputs(person: Person, settle: float = 0.0) -> None:
    """Everything a person can throw at the bot; each gets an answer, none an error. End to
    end, `settle` gives late messages time to arrive."""
    await person.send("/help")  # something on screen, as a person always has
    await person.expect_message("How this works")
    sent = await person.send("x" * 10_000)
    await person.send_sticker()
    await person.send_photo()
    await person.send_voice()
    await person.send_document(b"%PDF-1.4 nonsense", "cv.pdf", "application/pdf")
    await person.send("/definitely_not_a_command")
    await person.edit(sent["message_id"], "edited")
    for data in ("t1:zzz", "l1:xx", "h1:export", "h1c:del:1:1", "garbage", "t1:sub:999"):
        await person.press_data(data)
        await person.expect_answer(timeout=10)
    await asyncio.sleep(settle)
    assert GENERIC_ERROR not in person.transcript().lower()
