"""The candidate's card: opening it (from search, a list or a notification), the error
pictures and the scorecard, and the actions with their confirmation (one more attempt,
re-grade, delete the CVAT account or the data, reactivate the account)."""

from __future__ import annotations

import asyncio
import logging
import math

from aiogram import Bot, Router
from aiogram.types import BufferedInputFile, CallbackQuery, InputMediaPhoto, Message

from bot_files.hr_keyboards import (
    CardAct,
    HrCard,
    back_to_menu_keyboard,
    card_confirm_keyboard,
    confirmed,
)
from bot_files.notifier import Notifier
from bot_files.presentation.hr import (
    CONFIRM_TEXTS,
    card_letters,
    confirm_text,
    cut,
    name,
    regrade_report,
)
from bot_files.presentation.pictures import counted_attempt, picture_labels, scorecard
from bot_files.replies import acknowledge, answer, edit_or_send
from bot_files.services import Audit, HrActions, HrQueries
from bot_files.texts import Texts
from connection import CvatError
from tasks_metrics.to_handlers import AnnotationFormatError, CandidateSummary, GradingFailed

logger = logging.getLogger(__name__)

ALBUM_SIZE = 10           # sendMediaGroup takes 2..10 items
ALBUM_PAUSE = 1.0         # about one album a second in one chat
DELETE_CVAT_TEXTS = {"deleted": "hr.delete_cvat_done", "already_gone": "hr.delete_cvat_gone",
                     "no_account": "hr.delete_cvat_none"}
DELETE_DATA_TEXTS = {"deleted": "hr.delete_data_done", "building": "hr.delete_data_building"}


async def send_card(target: Message, t: Texts, hr_queries: HrQueries, audit: Audit,
                    candidate_id: int, reader: int) -> None:
    """The candidate's card with the buttons the reader's role allows (in the action log)."""
    view = await hr_queries.card_view(candidate_id, reader)
    if view is None:
        await target.answer(t("hr.not_found"), reply_markup=back_to_menu_keyboard(t))
        return
    await answer(target, card_letters(t, view, hr_queries.settings.zone,
                                      hr_queries.settings.cvat_link))
    await audit.record(reader, "hr.card", candidate_id)


async def card_pressed(callback: CallbackQuery, callback_data: HrCard, t: Texts,
                       hr_queries: HrQueries, hr_actions: HrActions, audit: Audit,
                       notifier: Notifier, bot: Bot) -> None:
    """A button on a card, a confirmation, or a notification."""
    target = await acknowledge(callback)
    if target is None:
        return
    act, cid, actor = callback_data.act, callback_data.cid, callback.from_user.id
    if act == CardAct.OPEN:
        await send_card(target, t, hr_queries, audit, cid, actor)
    elif act == CardAct.PICTURES:
        await send_pictures(target, t, hr_queries, hr_actions, audit, bot, cid,
                            callback_data.arg, actor)
    elif act == CardAct.SCORECARD:
        await send_scorecard(target, t, hr_queries, hr_actions, audit, cid, actor)
    elif act == CardAct.CANCEL:
        await edit_or_send(target, t("hr.cancelled"))
    else:
        candidate = await hr_queries.summary(cid)
        if candidate is None and act in CONFIRM_TEXTS:
            await target.answer(t("hr.not_found"))
        elif candidate is None:
            await edit_or_send(target, t("hr.not_found"))
        elif act in CONFIRM_TEXTS:
            await target.answer(confirm_text(t, act, candidate),
                                reply_markup=card_confirm_keyboard(
                                    t, act, cid, with_account=candidate.has_cvat_account))
        else:
            await _confirmed_action(target, t, hr_actions, notifier, bot, act, candidate, actor)


async def _confirmed_action(target: Message, t: Texts, hr_actions: HrActions,
                            notifier: Notifier, bot: Bot, act: CardAct,
                            candidate: CandidateSummary, actor: int) -> None:
    """The second press: do it, and show the result in place of the confirmation."""
    cid, who, cvat = candidate.id, name(candidate), cut(candidate.cvat_username or "")
    try:
        if act == confirmed(CardAct.EXTRA):
            extra = await hr_actions.grant_extra_attempt(actor, cid)
            await edit_or_send(target, t("hr.extra_done", name=who, extra=extra))
            await notifier.extra_attempt(bot, candidate.telegram_id)
        elif act == confirmed(CardAct.REGRADE):
            await edit_or_send(target, t("hr.regrade_working"))
            await edit_or_send(target, regrade_report(t, candidate,
                                                      await hr_actions.regrade(actor, cid)))
        elif act == confirmed(CardAct.DELETE_CVAT):
            outcome = await hr_actions.delete_cvat_account(actor, cid)
            await edit_or_send(target, t(DELETE_CVAT_TEXTS.get(outcome, "hr.not_found"),
                                         name=who, cvat=cvat))
        elif act in (CardAct.DELETE_DATA_OK, CardAct.DELETE_ALL_OK):
            outcome = await hr_actions.delete_data(actor, cid,
                                                   account=act == CardAct.DELETE_ALL_OK)
            await edit_or_send(target, t(DELETE_DATA_TEXTS.get(outcome, "hr.not_found"),
                                         name=who))
        elif act == CardAct.REACTIVATE:
            outcome = await hr_actions.reactivate(actor, cid)
            await target.answer(t(f"hr.reactivate_{outcome}", name=who, cvat=cvat))
    except CvatError as exc:
        logger.warning("%s on candidate %s not done: CVAT: %s", act, cid, exc)
        if act == CardAct.REACTIVATE:
            await target.answer(t("hr.reactivate_trouble"))
        else:
            await edit_or_send(target, t("hr.cvat_trouble"))


async def send_pictures(target: Message, t: Texts, hr_queries: HrQueries,
                        hr_actions: HrActions, audit: Audit, bot: Bot, candidate_id: int,
                        number: int, actor: int) -> None:
    """The error pictures of one attempt as albums of at most ten."""
    card = await hr_queries.card(candidate_id)
    attempt = next((a for a in card.attempts if a.number == number), None) if card else None
    if card is None or attempt is None:
        await target.answer(t("hr.not_found"))
        return
    if not attempt.has_work:
        await target.answer(t("hr.pictures_unavailable", number=number))
        return
    status = await target.answer(t("hr.pictures_working"))
    try:
        pictures = await hr_actions.error_pictures(attempt.id, picture_labels(t))
    except (GradingFailed, AnnotationFormatError) as exc:
        logger.warning("pictures of attempt %s not drawn: %s", attempt.id, exc)
        await edit_or_send(status, t("hr.pictures_failed", number=number))
        return
    await audit.record(actor, "hr.pictures", candidate_id,
                       {"attempt": number, "pictures": len(pictures)})
    if not pictures:
        await edit_or_send(status, t("hr.pictures_none", number=number))
        return
    await edit_or_send(status, t("hr.pictures_ready", number=number, count=len(pictures)))
    await _send_albums(bot, target.chat.id, pictures)


async def _send_albums(bot: Bot, chat_id: int, pictures: list[tuple[str, bytes]]) -> None:
    """Even albums of at most ten (never a lone picture at the end), about one a second."""
    albums = math.ceil(len(pictures) / ALBUM_SIZE)
    size = math.ceil(len(pictures) / albums)
    for index in range(albums):
        if index:
            await asyncio.sleep(ALBUM_PAUSE)
        group = pictures[index * size:(index + 1) * size]
        if len(group) == 1:
            file_name, data = group[0]
            await bot.send_photo(chat_id, BufferedInputFile(data, filename=file_name),
                                 caption=file_name)
            continue
        media = [InputMediaPhoto(media=BufferedInputFile(data, filename=file_name),
                                 caption=file_name) for file_name, data in group]
        await bot.send_media_group(chat_id, media)


async def send_scorecard(target: Message, t: Texts, hr_queries: HrQueries,
                         hr_actions: HrActions, audit: Audit, candidate_id: int,
                         actor: int) -> None:
    """The scorecard of the attempt that counts, as a picture HR can forward."""
    card = await hr_queries.card(candidate_id)
    attempt = counted_attempt(card) if card else None
    if card is None or attempt is None:
        await target.answer(t("hr.scorecard_none"))
        return
    status = await target.answer(t("hr.scorecard_working"))
    settings = hr_queries.settings
    allowed = settings.max_attempts + card.candidate.extra_attempts
    try:
        png = await hr_actions.scorecard(scorecard(t, card, attempt, settings.zone, allowed),
                                         picture_labels(t))
    except GradingFailed as exc:
        logger.warning("scorecard of candidate %s not drawn: %s", candidate_id, exc)
        await edit_or_send(status, t("hr.scorecard_failed"))
        return
    who = card.candidate.full_name or str(card.candidate.telegram_id)
    await target.answer_photo(BufferedInputFile(png, filename=f"scorecard_{candidate_id}.png"),
                              caption=t("hr.scorecard_caption", name=who,
                                        number=attempt.number))
    await audit.record(actor, "hr.scorecard", candidate_id, {"attempt": attempt.number})


def create_router() -> Router:
    """The card's buttons (inside the HR-only router)."""
    router = Router(name="hr_card")
    router.callback_query.register(card_pressed, HrCard.filter())
    return router
