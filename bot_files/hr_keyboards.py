"""HR keyboards: inline buttons with short versioned CallbackData prefixes ("h1", "h1c", ...),
one button per row where labels are long (HR read this on phones)."""

from __future__ import annotations

from collections.abc import Callable
from enum import StrEnum

from aiogram.filters.callback_data import CallbackData
from aiogram.types import InlineKeyboardMarkup
from aiogram.utils.keyboard import InlineKeyboardBuilder

from authorization import Notify, NotifyChoice, Role
from bot_files.keyboards import TaskAction, TaskStep
from bot_files.texts import Raw, Texts

HR_PREFIXES = frozenset({"h1", "h1c", "h1s", "h1w", "h1r", "h1l", "h1n", "h1d", "h1a", "h1k"})
MAX_LABEL = 40  # characters of a person's name on a button
# The HR menu's buttons, as HR may also type them (each opens its screen, even mid-dialog).
HR_MENU_KEYS = ("hr.menu_button", "hr.btn_export", "hr.btn_lists", "hr.btn_find",
                "hr.btn_whitelist", "hr.btn_rule", "key.btn")


class MenuAct(StrEnum):
    """Buttons of the HR menu."""

    MENU = "m"
    EXPORT = "x"
    FIND = "f"
    WHITELIST = "w"
    NOTIFY = "n"
    RULE = "r"
    LISTS = "l"
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
    SCORECARD = "sc"  # the one-page scorecard of the attempt that counts
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
    ROLE = "ro"  # viewer <-> admin
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


class DecideAct(StrEnum):
    """Steps of a decision: pick it (then HR may type a line), send it, or cancel."""

    PICK = "p"
    SEND = "s"
    CANCEL = "no"


class HrDecide(CallbackData, prefix="h1d"):
    """"h1d:s:42:invite": send the Invite decision to candidate 42."""

    act: DecideAct
    cid: int
    d: str = ""


class HrReply(CallbackData, prefix="h1a"):
    """"h1a:123456789": answer a support message of Telegram user 123456789."""

    tid: int


class HrList(CallbackData, prefix="h1l"):
    """"h1l:review:2": page 2 of a list of candidates ("" = the overview of every list)."""

    name: str = ""
    page: int = 1


class HrNotify(CallbackData, prefix="h1n"):
    """"h1n:digest": how this HR user hears about results (DIGEST_TIME: change the digest
    time)."""

    mode: str


DIGEST_TIME = "time"  # HrNotify's mode for "change the digest time"
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


def notify_label(t: Texts, choice: NotifyChoice) -> str:
    """The menu button: how this HR user hears about results now."""
    return t(f"hr.btn_notify_{choice.mode}", time=choice.digest_at.strftime("%H:%M"))


def hr_menu_keyboard(t: Texts, choice: NotifyChoice,
                     candidate_side: bool = False) -> InlineKeyboardMarkup:
    """The HR menu: export, lists, find, whitelist, pass rule, notifications (and, at /start,
    the way to the candidate's greeting)."""
    builder = InlineKeyboardBuilder()
    builder.button(text=t("hr.btn_export"), callback_data=HrMenu(act=MenuAct.EXPORT))
    builder.button(text=t("hr.btn_lists"), callback_data=HrMenu(act=MenuAct.LISTS))
    builder.button(text=t("hr.btn_find"), callback_data=HrMenu(act=MenuAct.FIND))
    builder.button(text=t("hr.btn_whitelist"), callback_data=HrMenu(act=MenuAct.WHITELIST))
    builder.button(text=t("hr.btn_rule"), callback_data=HrMenu(act=MenuAct.RULE))
    builder.button(text=t("key.btn"), callback_data=HrMenu(act=MenuAct.KEY))
    builder.button(text=notify_label(t, choice), callback_data=HrMenu(act=MenuAct.NOTIFY))
    if candidate_side:
        builder.button(text=t("hr_start.take_test"),
                       callback_data=TaskAction(step=TaskStep.GREETING))
    builder.adjust(1)
    return builder.as_markup()


def notify_keyboard(t: Texts, choice: NotifyChoice) -> InlineKeyboardMarkup:
    """Each result / daily digest / nothing (the current one ticked), the digest's time."""
    builder = InlineKeyboardBuilder()
    for mode in Notify:
        tick = "✔️ " if mode == choice.mode else ""
        builder.button(text=tick + t(f"hr.notify_choice_{mode}",
                                     time=choice.digest_at.strftime("%H:%M")),
                       callback_data=HrNotify(mode=str(mode)))
    builder.button(text=t("hr.btn_digest_time"), callback_data=HrNotify(mode=DIGEST_TIME))
    builder.button(text=t("hr.btn_menu"), callback_data=HrMenu(act=MenuAct.MENU))
    builder.adjust(1)
    return builder.as_markup()


def lists_keyboard(t: Texts, counts: list[tuple[str, int]]) -> InlineKeyboardMarkup:
    """A button per list with its size, then back to the menu."""
    builder = InlineKeyboardBuilder()
    for name, count in counts:
        builder.button(text=t(f"lists.btn_{name}", count=count),
                       callback_data=HrList(name=name, page=1))
    builder.button(text=t("hr.btn_menu"), callback_data=HrMenu(act=MenuAct.MENU))
    builder.adjust(1)
    return builder.as_markup()


def list_page_keyboard(t: Texts, name: str, items: list[tuple[int, str]], page: int,
                       pages: int) -> InlineKeyboardMarkup:
    """One button per candidate (opens the card), paging, back to the lists."""
    builder = InlineKeyboardBuilder()
    for candidate_id, label in items:
        builder.button(text=short(label), callback_data=HrCard(act=CardAct.OPEN, cid=candidate_id))
    paging = _pager(t, builder, page, pages, lambda n: HrList(name=name, page=n))
    builder.button(text=t("lists.btn_back"), callback_data=HrList())
    builder.adjust(*([1] * len(items)), *([paging] if paging else []), 1)
    return builder.as_markup()


def rule_keyboard(t: Texts, measures: list[tuple[str, str]], *,
                  draft: bool, admin: bool = True) -> InlineKeyboardMarkup:
    """A button per measure (value, label) to change it; then Apply/Discard for a draft, or
    History and the shipped defaults for the rule in force; back to the menu. A viewer gets
    History and the menu only."""
    builder = InlineKeyboardBuilder()
    if not admin:
        builder.button(text=t("hr.btn_rule_history"), callback_data=HrRule(act=RuleAct.HISTORY))
        builder.button(text=t("hr.btn_menu"), callback_data=HrMenu(act=MenuAct.MENU))
        builder.adjust(2)
        return builder.as_markup()
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


def _pager(t: Texts, builder: InlineKeyboardBuilder, page: int, pages: int,
           to_page: Callable[[int], CallbackData]) -> int:
    """Add ‹ Back / Next › when there are several pages (`to_page`: the button data of a
    page); how many buttons were added."""
    added = 0
    if page > 1:
        builder.button(text=t("hr.btn_prev"), callback_data=to_page(page - 1))
        added += 1
    if page < pages:
        builder.button(text=t("hr.btn_next"), callback_data=to_page(page + 1))
        added += 1
    return added


def search_results_keyboard(t: Texts, items: list[tuple[int, str]], page: int,
                            pages: int) -> InlineKeyboardMarkup:
    """One button per candidate (id, label), then paging."""
    builder = InlineKeyboardBuilder()
    for candidate_id, label in items:
        builder.button(text=short(label), callback_data=HrCard(act=CardAct.OPEN, cid=candidate_id))
    paging = _pager(t, builder, page, pages, lambda n: HrSearchPage(page=n))
    builder.button(text=t("hr.btn_menu"), callback_data=HrMenu(act=MenuAct.MENU))
    builder.adjust(*([1] * len(items)), *([paging] if paging else []), 1)
    return builder.as_markup()


def card_keyboard(t: Texts, candidate_id: int, picture_attempts: list[int], *,
                  can_regrade: bool, has_cvat_account: bool,
                  deactivated: bool = False, admin: bool = True) -> InlineKeyboardMarkup:
    """Pictures per attempt and the scorecard; for admins also one more attempt, re-grade,
    reactivate or delete the account, delete data."""
    builder = InlineKeyboardBuilder()
    for number in picture_attempts:
        builder.button(text=t("hr.btn_pictures", number=number),
                       callback_data=HrCard(act=CardAct.PICTURES, cid=candidate_id, arg=number))
    if picture_attempts:
        builder.button(text=t("hr.btn_scorecard"),
                       callback_data=HrCard(act=CardAct.SCORECARD, cid=candidate_id))
    if admin:
        _admin_card_buttons(t, builder, candidate_id, can_regrade=can_regrade,
                            has_cvat_account=has_cvat_account, deactivated=deactivated)
    builder.button(text=t("hr.btn_menu"), callback_data=HrMenu(act=MenuAct.MENU))
    builder.adjust(*([1] * (len(picture_attempts) + bool(picture_attempts))),
                   *([3] if admin else []), 1)
    return builder.as_markup()


def _admin_card_buttons(t: Texts, builder: InlineKeyboardBuilder, candidate_id: int, *,
                        can_regrade: bool, has_cvat_account: bool, deactivated: bool) -> None:
    for decision in ("invite", "reject", "hold"):
        builder.button(text=t(f"hr.btn_decide_{decision}"),
                       callback_data=HrDecide(act=DecideAct.PICK, cid=candidate_id, d=decision))
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


def decision_keyboard(t: Texts, candidate_id: int, decision: str) -> InlineKeyboardMarkup:
    """Send / Cancel under the preview of a decision's message."""
    builder = InlineKeyboardBuilder()
    builder.button(text=t("hr.btn_decision_send"),
                   callback_data=HrDecide(act=DecideAct.SEND, cid=candidate_id, d=decision))
    builder.button(text=t("hr.btn_cancel"),
                   callback_data=HrDecide(act=DecideAct.CANCEL, cid=candidate_id))
    builder.adjust(2)
    return builder.as_markup()


def reply_keyboard(t: Texts, telegram_id: int) -> InlineKeyboardMarkup:
    """Reply under a support message forwarded to HR."""
    builder = InlineKeyboardBuilder()
    builder.button(text=t("hr.btn_reply"), callback_data=HrReply(tid=telegram_id))
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


def whitelist_keyboard(t: Texts, removable: list[tuple[int, str, Role]], page: int,
                       pages: int, *, admin: bool = True) -> InlineKeyboardMarkup:
    """For admins: per person on the page a remove and a role button, and Add; paging; back
    to the menu."""
    builder = InlineKeyboardBuilder()
    rows: list[int] = []
    if admin:
        for telegram_id, label, role in removable:
            builder.button(text=t("hr.wl_btn_remove", who=short(label)),
                           callback_data=HrWhitelist(act=WhitelistAct.REMOVE, tid=telegram_id,
                                                     page=page))
            builder.button(text=t("hr.wl_btn_make_viewer" if role == Role.ADMIN
                                  else "hr.wl_btn_make_admin"),
                           callback_data=HrWhitelist(act=WhitelistAct.ROLE, tid=telegram_id,
                                                     page=page))
            rows.append(2)
        builder.button(text=t("hr.wl_btn_add"), callback_data=HrWhitelist(act=WhitelistAct.ADD))
        rows.append(1)
    paging = _pager(t, builder, page, pages,
                    lambda n: HrWhitelist(act=WhitelistAct.PAGE, page=n))
    builder.button(text=t("hr.btn_menu"), callback_data=HrMenu(act=MenuAct.MENU))
    builder.adjust(*rows, *([paging] if paging else []), 1)
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
