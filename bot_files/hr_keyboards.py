"""HR keyboards: inline buttons with short versioned CallbackData prefixes ("h1", "h1c", ...),
one button per row where labels are long (HR read this on phones)."""

from __future__ import annotations

from enum import StrEnum

from aiogram.filters.callback_data import CallbackData
from aiogram.types import InlineKeyboardMarkup
from aiogram.utils.keyboard import InlineKeyboardBuilder

from bot_files.texts import Raw, Texts

HR_PREFIXES = frozenset({"h1", "h1c", "h1s", "h1w", "h1r", "h1k"})
MAX_LABEL = 40  # characters of a person's name on a button


class MenuAct(StrEnum):
    """Buttons of the HR menu."""

    MENU = "m"
    EXPORT = "x"
    FIND = "f"
    WHITELIST = "w"
    NOTIFY = "n"
    RULE = "r"
    KEY = "k"


class HrMenu(CallbackData, prefix="h1"):
    """"h1:x": a button of the HR menu."""

    act: MenuAct


class CardAct(StrEnum):
    """Buttons on a candidate's card and its confirmations ("!" = confirmed)."""

    OPEN = "o"
    PICTURES = "p"
    EXTRA = "e"
    EXTRA_OK = "e!"
    REGRADE = "r"
    REGRADE_OK = "r!"
    DELETE_CVAT = "dc"
    DELETE_CVAT_OK = "dc!"
    DELETE_DATA = "dd"
    DELETE_DATA_OK = "dd!"  # the data, and the CVAT account deactivated
    DELETE_ALL_OK = "da!"  # the data and the CVAT account
    REACTIVATE = "ra"  # the CVAT account the bot deactivated after the test
    CANCEL = "no"


class HrCard(CallbackData, prefix="h1c"):
    """"h1c:dc!:42:0": an action on candidate 42 (arg: the attempt number for pictures)."""

    act: CardAct
    cid: int
    arg: int = 0


class HrSearchPage(CallbackData, prefix="h1s"):
    """"h1s:2": a page of search results (the query is kept in the dialog data)."""

    page: int


class WhitelistAct(StrEnum):
    """Buttons of the whitelist."""

    PAGE = "pg"
    ADD = "add"
    REMOVE = "rm"
    REMOVE_OK = "rm!"
    CANCEL = "no"


class HrWhitelist(CallbackData, prefix="h1w"):
    """"h1w:rm:123456789:0": a whitelist action (tid: the person, page: the list page)."""

    act: WhitelistAct
    tid: int = 0
    page: int = 0


class RuleAct(StrEnum):
    """Buttons of the pass rule editor."""

    EDIT = "e"
    MORE = "m"
    DEFAULTS = "df"
    APPLY = "a"
    DISCARD = "d"
    HISTORY = "h"


class HrRule(CallbackData, prefix="h1r"):
    """"h1r:e:car_recall": the pass rule editor (m: the measure to change)."""

    act: RuleAct
    m: str = ""


class KeyAct(StrEnum):
    """Buttons of the answer key screen."""

    CALIBRATION = "c"
    ASK = "a"  # exclude: ask which image or object
    EXCLUDE = "x"  # exclude the image (n = 0) or object n of image i: asks to confirm
    EXCLUDE_OK = "x!"


class HrKey(CallbackData, prefix="h1k"):
    """"h1k:x:scene_031.jpg:3": the answer key (i: an image of the set, n: an object)."""

    act: KeyAct
    i: str = ""
    n: int = 0


def is_hr_callback(data: str | None) -> bool:
    """True for callback data shaped like an HR button (to log forged presses)."""
    return bool(data) and data.split(":", 1)[0] in HR_PREFIXES


def short(label: str) -> Raw:
    """A person's name fit for a button (buttons are plain text: no escaping)."""
    label = " ".join(label.split())
    return Raw(label if len(label) <= MAX_LABEL else label[:MAX_LABEL - 1] + "…")


def hr_menu_keyboard(t: Texts, notifications: bool) -> InlineKeyboardMarkup:
    """The HR menu: export, find, whitelist, notifications switch."""
    builder = InlineKeyboardBuilder()
    builder.button(text=t("hr.btn_export"), callback_data=HrMenu(act=MenuAct.EXPORT))
    builder.button(text=t("hr.btn_find"), callback_data=HrMenu(act=MenuAct.FIND))
    builder.button(text=t("hr.btn_whitelist"), callback_data=HrMenu(act=MenuAct.WHITELIST))
    builder.button(text=t("hr.btn_rule"), callback_data=HrMenu(act=MenuAct.RULE))
    builder.button(text=t("key.btn"), callback_data=HrMenu(act=MenuAct.KEY))
    builder.button(text=t("hr.btn_notify_on" if notifications else "hr.btn_notify_off"),
                   callback_data=HrMenu(act=MenuAct.NOTIFY))
    builder.adjust(1)
    return builder.as_markup()


def rule_keyboard(t: Texts, measures: list[tuple[str, str]], *,
                  draft: bool) -> InlineKeyboardMarkup:
    """A button per measure (value, label) to change it; then Apply/Discard for a draft, or
    History and the shipped defaults for the rule in force; back to the menu."""
    builder = InlineKeyboardBuilder()
    for measure, label in measures:
        builder.button(text=label, callback_data=HrRule(act=RuleAct.EDIT, m=measure))
    if draft:
        builder.button(text=t("hr.btn_rule_apply"), callback_data=HrRule(act=RuleAct.APPLY))
        builder.button(text=t("hr.btn_rule_discard"),
                       callback_data=HrRule(act=RuleAct.DISCARD))
    else:
        builder.button(text=t("hr.btn_rule_history"),
                       callback_data=HrRule(act=RuleAct.HISTORY))
        builder.button(text=t("hr.btn_rule_defaults"),
                       callback_data=HrRule(act=RuleAct.DEFAULTS))
    builder.button(text=t("hr.btn_menu"), callback_data=HrMenu(act=MenuAct.MENU))
    builder.adjust(*([2] * (len(measures) // 2)), *([1] * (len(measures) % 2)), 2, 1)
    return builder.as_markup()


def rule_preview_keyboard(t: Texts) -> InlineKeyboardMarkup:
    """Apply / Change another measure / Discard under a draft's preview."""
    builder = InlineKeyboardBuilder()
    builder.button(text=t("hr.btn_rule_apply"), callback_data=HrRule(act=RuleAct.APPLY))
    builder.button(text=t("hr.btn_rule_edit"), callback_data=HrRule(act=RuleAct.MORE))
    builder.button(text=t("hr.btn_rule_discard"), callback_data=HrRule(act=RuleAct.DISCARD))
    builder.adjust(1)
    return builder.as_markup()


def back_to_menu_keyboard(t: Texts) -> InlineKeyboardMarkup:
    """A single button back to the HR menu."""
    builder = InlineKeyboardBuilder()
    builder.button(text=t("hr.btn_menu"), callback_data=HrMenu(act=MenuAct.MENU))
    return builder.as_markup()


def _pager(t: Texts, builder: InlineKeyboardBuilder, page: int, pages: int) -> int:
    """Add ‹ Back / Next › for search results when there are several pages; buttons added."""
    added = 0
    if page > 1:
        builder.button(text=t("hr.btn_prev"), callback_data=HrSearchPage(page=page - 1))
        added += 1
    if page < pages:
        builder.button(text=t("hr.btn_next"), callback_data=HrSearchPage(page=page + 1))
        added += 1
    return added


def search_results_keyboard(t: Texts, items: list[tuple[int, str]], page: int,
                            pages: int) -> InlineKeyboardMarkup:
    """One button per candidate (id, label), then paging."""
    builder = InlineKeyboardBuilder()
    for candidate_id, label in items:
        builder.button(text=short(label), callback_data=HrCard(act=CardAct.OPEN, cid=candidate_id))
    paging = _pager(t, builder, page, pages)
    builder.button(text=t("hr.btn_menu"), callback_data=HrMenu(act=MenuAct.MENU))
    builder.adjust(*([1] * len(items)), *([paging] if paging else []), 1)
    return builder.as_markup()


def card_keyboard(t: Texts, candidate_id: int, picture_attempts: list[int], *,
                  can_regrade: bool, has_cvat_account: bool,
                  deactivated: bool = False) -> InlineKeyboardMarkup:
    """Pictures per attempt, one more attempt, re-grade, reactivate or delete the account,
    delete data."""
    builder = InlineKeyboardBuilder()
    for number in picture_attempts:
        builder.button(text=t("hr.btn_pictures", number=number),
                       callback_data=HrCard(act=CardAct.PICTURES, cid=candidate_id, arg=number))
    builder.button(text=t("hr.btn_extra"),
                   callback_data=HrCard(act=CardAct.EXTRA, cid=candidate_id))
    if can_regrade:
        builder.button(text=t("hr.btn_regrade"),
                       callback_data=HrCard(act=CardAct.REGRADE, cid=candidate_id))
    if has_cvat_account and deactivated:
        builder.button(text=t("hr.btn_reactivate"),
                       callback_data=HrCard(act=CardAct.REACTIVATE, cid=candidate_id))
    if has_cvat_account:
        builder.button(text=t("hr.btn_delete_cvat"),
                       callback_data=HrCard(act=CardAct.DELETE_CVAT, cid=candidate_id))
    builder.button(text=t("hr.btn_delete_data"),
                   callback_data=HrCard(act=CardAct.DELETE_DATA, cid=candidate_id))
    builder.button(text=t("hr.btn_menu"), callback_data=HrMenu(act=MenuAct.MENU))
    builder.adjust(1)
    return builder.as_markup()


_CONFIRMATIONS = {
    CardAct.EXTRA: (CardAct.EXTRA_OK, "hr.btn_yes_extra"),
    CardAct.REGRADE: (CardAct.REGRADE_OK, "hr.btn_yes_regrade"),
    CardAct.DELETE_CVAT: (CardAct.DELETE_CVAT_OK, "hr.btn_yes_delete"),
    CardAct.DELETE_DATA: (CardAct.DELETE_DATA_OK, "hr.btn_yes_delete"),
}


def confirmed(act: CardAct) -> CardAct:
    """The confirming twin of an action that asks first."""
    return _CONFIRMATIONS[act][0]


def card_confirm_keyboard(t: Texts, act: CardAct, candidate_id: int, *,
                          with_account: bool = False) -> InlineKeyboardMarkup:
    """Yes / Cancel under a confirmation: the second press does it. Deleting the data of a
    candidate with a CVAT account asks what becomes of the account: deleted or deactivated."""
    builder = InlineKeyboardBuilder()
    if act == CardAct.DELETE_DATA and with_account:
        builder.button(text=t("hr.btn_yes_delete_all"),
                       callback_data=HrCard(act=CardAct.DELETE_ALL_OK, cid=candidate_id))
        builder.button(text=t("hr.btn_yes_delete_deactivate"),
                       callback_data=HrCard(act=CardAct.DELETE_DATA_OK, cid=candidate_id))
        builder.button(text=t("hr.btn_cancel"),
                       callback_data=HrCard(act=CardAct.CANCEL, cid=candidate_id))
        builder.adjust(1)
        return builder.as_markup()
    ok, label = _CONFIRMATIONS[act]
    builder.button(text=t(label), callback_data=HrCard(act=ok, cid=candidate_id))
    builder.button(text=t("hr.btn_cancel"),
                   callback_data=HrCard(act=CardAct.CANCEL, cid=candidate_id))
    builder.adjust(2)
    return builder.as_markup()


def open_card_keyboard(t: Texts, candidate_id: int) -> InlineKeyboardMarkup:
    """The button under an HR notification."""
    builder = InlineKeyboardBuilder()
    builder.button(text=t("hr.btn_open_card"),
                   callback_data=HrCard(act=CardAct.OPEN, cid=candidate_id))
    return builder.as_markup()


def whitelist_keyboard(t: Texts, removable: list[tuple[int, str]], page: int,
                       pages: int) -> InlineKeyboardMarkup:
    """A remove button per person on the page, Add, paging, back to the menu."""
    builder = InlineKeyboardBuilder()
    for telegram_id, label in removable:
        builder.button(text=t("hr.wl_btn_remove", who=short(label)),
                       callback_data=HrWhitelist(act=WhitelistAct.REMOVE, tid=telegram_id,
                                                 page=page))
    builder.button(text=t("hr.wl_btn_add"), callback_data=HrWhitelist(act=WhitelistAct.ADD))
    paging = 0
    if page > 1:
        builder.button(text=t("hr.btn_prev"),
                       callback_data=HrWhitelist(act=WhitelistAct.PAGE, page=page - 1))
        paging += 1
    if page < pages:
        builder.button(text=t("hr.btn_next"),
                       callback_data=HrWhitelist(act=WhitelistAct.PAGE, page=page + 1))
        paging += 1
    builder.button(text=t("hr.btn_menu"), callback_data=HrMenu(act=MenuAct.MENU))
    builder.adjust(*([1] * len(removable)), 1, *([paging] if paging else []), 1)
    return builder.as_markup()


def whitelist_confirm_keyboard(t: Texts, telegram_id: int, page: int) -> InlineKeyboardMarkup:
    """Yes, remove / Cancel."""
    builder = InlineKeyboardBuilder()
    builder.button(text=t("hr.wl_btn_yes_remove"),
                   callback_data=HrWhitelist(act=WhitelistAct.REMOVE_OK, tid=telegram_id,
                                             page=page))
    builder.button(text=t("hr.btn_cancel"),
                   callback_data=HrWhitelist(act=WhitelistAct.CANCEL, page=page))
    builder.adjust(2)
    return builder.as_markup()


def key_keyboard(t: Texts, suspects: list[tuple[str, int, str]]) -> InlineKeyboardMarkup:
    """The answer key screen: calibration, exclude a probable key error (image, number,
    label) or any object or image, back to the menu."""
    builder = InlineKeyboardBuilder()
    builder.button(text=t("key.btn_calibration"), callback_data=HrKey(act=KeyAct.CALIBRATION))
    for image, number, label in suspects:
        builder.button(text=t("key.btn_exclude_suspect", object=f"{image} #{number} {label}"),
                       callback_data=HrKey(act=KeyAct.EXCLUDE, i=image, n=number))
    builder.button(text=t("key.btn_exclude"), callback_data=HrKey(act=KeyAct.ASK))
    builder.button(text=t("hr.btn_menu"), callback_data=HrMenu(act=MenuAct.MENU))
    builder.adjust(1)
    return builder.as_markup()


def key_confirm_keyboard(t: Texts, image: str, number: int) -> InlineKeyboardMarkup:
    """Exclude for real, or cancel."""
    builder = InlineKeyboardBuilder()
    builder.button(text=t("key.btn_confirm"),
                   callback_data=HrKey(act=KeyAct.EXCLUDE_OK, i=image, n=number))
    builder.button(text=t("hr.btn_cancel"), callback_data=HrMenu(act=MenuAct.MENU))
    builder.adjust(2)
    return builder.as_markup()
