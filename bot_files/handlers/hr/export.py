"""HR's export: the summary, the score chart, and every candidate as XLSX and CSV."""

from __future__ import annotations

from datetime import UTC, datetime

from aiogram import F, Router
from aiogram.types import BufferedInputFile, CallbackQuery, Message

from bot_files.hr_keyboards import HrMenu, MenuAct, back_to_menu_keyboard
from bot_files.presentation.hr import export_summary
from bot_files.replies import acknowledge, edit_or_send, register_screen
from bot_files.services import Audit, HrQueries
from bot_files.texts import Texts
from tasks_metrics.to_handlers import export_file_name


async def export_all(target: Message, t: Texts, hr_queries: HrQueries, audit: Audit,
                     actor_id: int) -> None:
    """Summary, score chart, XLSX and CSV of every candidate (a worker makes the files)."""
    status = await target.answer(t("hr.export_working"))
    files = await hr_queries.export(t.language)
    if files is None:
        await edit_or_send(status, t("hr.export_empty"), reply_markup=back_to_menu_keyboard(t))
        return
    exports = files.exports
    await edit_or_send(status, export_summary(t, exports, await hr_queries.decision_counts()))
    if files.chart is not None:
        await target.answer_photo(BufferedInputFile(files.chart, filename="scores.png"),
                                  caption=t("hr.chart_caption", count=len(exports.scores)))
    now = datetime.now(UTC)
    await target.answer_document(
        BufferedInputFile(exports.xlsx, filename=export_file_name(now, "xlsx")),
        caption=t("hr.xlsx_caption"))
    await target.answer_document(
        BufferedInputFile(exports.csv, filename=export_file_name(now, "csv")),
        caption=t("hr.csv_caption"), reply_markup=back_to_menu_keyboard(t))
    await audit.record(actor_id, "hr.export", details={"candidates": exports.summary.candidates})


async def open_export(event: Message | CallbackQuery, t: Texts, hr_queries: HrQueries,
                      audit: Audit) -> None:
    """📊 Export, pressed in the HR menu or typed."""
    target = await acknowledge(event)
    if target is not None:
        await export_all(target, t, hr_queries, audit, target.chat.id)


def create_router() -> Router:
    """The export (inside the HR-only router)."""
    router = Router(name="hr_export")
    register_screen(router, open_export, HrMenu.filter(F.act == MenuAct.EXPORT), "hr.btn_export")
    return router
