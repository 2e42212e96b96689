"""HR see the task set and the answer key in force, download the calibration, and exclude a
probable key error (or any object or image) from grading: the attempts graded on that image
are re-graded from their stored work."""

from __future__ import annotations

import logging
import re

from aiogram import F, Router
from aiogram.fsm.context import FSMContext
from aiogram.types import BufferedInputFile, CallbackQuery, Message

from bot_files.dialogs import KeyStates
from bot_files.hr_keyboards import (
    HrKey,
    HrMenu,
    KeyAct,
    MenuAct,
    back_to_menu_keyboard,
    key_confirm_keyboard,
)
from bot_files.presentation.answer_key import key_screen
from bot_files.replies import (
    acknowledge,
    answer,
    edit_or_send,
    register_screen,
    register_typed_answer,
)
from bot_files.services import AnswerKey, Audit
from bot_files.texts import Texts
from tasks_metrics.to_handlers import KeyChangeError

logger = logging.getLogger(__name__)

SUSPECTS_SHOWN = 5
_WHAT = re.compile(r"^\s*(\S+?)\s*(?:#?(\d{1,4}))?\s*$")


async def show_key(target: Message, t: Texts, answer_key: AnswerKey) -> None:
    """The set, the key in force and the probable errors in it, with their buttons."""
    key, found = await answer_key.suspects(SUSPECTS_SHOWN)
    await answer(target, key_screen(t, answer_key.task_set, key, found))


async def open_key(event: Message | CallbackQuery, state: FSMContext, t: Texts,
                   answer_key: AnswerKey) -> None:
    """🔑 Answer key, pressed in the HR menu or typed."""
    target = await acknowledge(event)
    if target is not None:
        await state.set_state(None)
        await show_key(target, t, answer_key)


async def _what(t: Texts, answer_key: AnswerKey, image: str, number: int) -> str:
    """The image or object to exclude, in words; KeyChangeError when the set has none."""
    if not number:
        if image not in answer_key.task_set.image_names:
            raise KeyChangeError(f"the set has no image {image!r}")
        return t("key.the_image", image=image)
    return await answer_key.describe_object(image, number)


async def _ask_confirm(target: Message, t: Texts, answer_key: AnswerKey, image: str,
                       number: int) -> None:
    try:
        what = await _what(t, answer_key, image, number)
    except KeyChangeError as exc:
        await target.answer(t("key.refused", reason=str(exc)))
        return
    await target.answer(t("key.confirm", what=what),
                        reply_markup=key_confirm_keyboard(t, image, number))


async def key_pressed(callback: CallbackQuery, callback_data: HrKey, state: FSMContext,
                      t: Texts, answer_key: AnswerKey, audit: Audit) -> None:
    """Calibration, exclude (ask, confirm, do)."""
    target = await acknowledge(callback)
    if target is None:
        return
    actor, task_set = callback.from_user.id, answer_key.task_set
    if callback_data.act == KeyAct.CALIBRATION:
        sheet = await answer_key.calibration_file()
        await target.answer_document(
            BufferedInputFile(sheet.xlsx,
                              filename=f"calibration_{task_set.name}_v{sheet.version}.xlsx"),
            caption=t("key.calibration_caption", set=task_set.name, version=sheet.version),
            reply_markup=back_to_menu_keyboard(t))
        await audit.record(actor, "hr.calibration", details={"version": sheet.version})
    elif callback_data.act == KeyAct.ASK:
        await state.set_state(KeyStates.exclude)
        await target.answer(t("key.ask"))
    elif callback_data.act == KeyAct.EXCLUDE:
        await _ask_confirm(target, t, answer_key, callback_data.i, callback_data.n)
    else:
        await edit_or_send(target, t("key.working"))
        try:
            key = await answer_key.exclude(callback_data.i, callback_data.n or None, actor)
        except KeyChangeError as exc:
            await edit_or_send(target, t("key.refused", reason=str(exc)))
            return
        await audit.record(actor, "hr.answer_key", details={
            "version": key.version, "change": key.change})
        regraded = await answer_key.regrade()
        await edit_or_send(target, t("key.done", version=key.version, change=key.change,
                                     regraded=regraded),
                           reply_markup=back_to_menu_keyboard(t))


async def exclude_received(message: Message, state: FSMContext, t: Texts,
                           answer_key: AnswerKey) -> None:
    """The typed image (and object number) to exclude."""
    match = _WHAT.match(message.text or "")
    if match is None:
        await message.answer(t("key.bad"))
        return
    await state.set_state(None)
    await _ask_confirm(message, t, answer_key, match.group(1)[:100], int(match.group(2) or 0))


async def exclude_not_text(message: Message, t: Texts) -> None:
    """Anything but text while waiting for the image."""
    await message.answer(t("key.bad"))


def create_router() -> Router:
    """The answer key screen (inside the HR-only router)."""
    router = Router(name="hr_answer_key")
    register_screen(router, open_key, HrMenu.filter(F.act == MenuAct.KEY), "key.btn")
    router.callback_query.register(key_pressed, HrKey.filter())
    register_typed_answer(router, KeyStates.exclude, exclude_received, exclude_not_text)
    return router

