"""The bot works in private chats only: in a group it says so once and does nothing else, so
HR exports and logins never land there."""

from __future__ import annotations

from db import Database
from tests.fast.chat import FastChat, FastTelegram


async def test_in_a_group_the_bot_says_once_where_it_works_and_nothing_else(
    telegram: FastTelegram, hr_user: FastChat, db: Database
) -> None:
    group = telegram.group(-100_500, "Team chat")
    await group.send_as(hr_user, "/hr")
    await group.expect_message("private chats only")
    for text in ("/hr", "📊 All candidates", "/start", "📝 Get a test task", "hello"):
        await group.send_as(hr_user, text)
    # The same person, in private, is served as usual (and after the group's updates).
    await hr_user.send("/hr")
    await hr_user.expect_message("HR menu")
    await group.expect_nothing(within=1.0)
    assert len(group.messages) == 1
    assert not any(m.document for m in group.messages)
    assert not any("HR menu" in m.text for m in group.messages)
    # Nothing the group wrote reached the database: only the private /hr was recorded.
    assert await db.fetchval("SELECT count(*) FROM action_log WHERE action = 'hr.menu'") == 1
