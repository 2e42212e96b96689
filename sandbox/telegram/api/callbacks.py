"""Button presses: answerCallbackQuery (the press itself is the user side's)."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from sandbox.telegram.api.registry import method
from sandbox.telegram.errors import bad

if TYPE_CHECKING:
    from sandbox.telegram.params import Params
    from sandbox.telegram.world import BotState, World

QUERY_TOO_OLD = "query is too old and response timeout expired or query ID is invalid"


@method("answerCallbackQuery")
async def answer_callback_query(world: World, bot: BotState, params: Params) -> Any:
    """Answer a press once (a toast, an alert or a URL); a second answer is too old."""
    qid = params.str("callback_query_id")
    query = bot.queries.get(qid or "")
    if query is None or query["answered"]:
        raise bad(QUERY_TOO_OLD)
    text = params.str("text")
    if text is not None and len(text) > 200:
        raise bad("MESSAGE_TOO_LONG")
    query["answered"] = True
    user = bot.users.get(query["user"])
    answer = {
        "query_id": qid,
        "message_id": query["message_id"],
        "text": text,
        "show_alert": params.bool("show_alert"),
        "url": params.str("url"),
        "cache_time": params.int("cache_time", 0),
    }
    if user is not None:
        user.on_callback_answer(answer)
    return True
