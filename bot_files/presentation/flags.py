"""How flags and the answer key version read on the HR card, in notifications and in the
export (texts in media/texts/keys.*.toml)."""

from __future__ import annotations

import html

from bot_files.texts import Raw, Texts
from tasks_metrics.to_handlers import SAME_PERSON, SIMILAR, TOO_FAST, Flag

NAME_LIMIT = 48
TYPOS_SHOWN = 5


def _decimal(t: Texts, value: float) -> str:
    text = f"{value:g}"
    return text.replace(".", ",") if t.language == "ru" else text


def _spent(t: Texts, seconds: int) -> str:
    if seconds < 60:
        return t("flags.seconds", seconds=seconds)
    if not seconds % 60:
        return t("flags.minutes_only", minutes=seconds // 60)
    return t("flags.minutes", minutes=seconds // 60, seconds=seconds % 60)


def flag_line(t: Texts, flag: Flag) -> str:
    """One flag with its evidence (HTML)."""
    e = flag.evidence
    if flag.kind == TOO_FAST:
        return t("flags.too_fast", objects=e["objects"], spent=_spent(t, int(e["seconds"])),
                 per_object=_decimal(t, e["per_object"]), needed=_decimal(t, e["needed"]))
    name = " ".join(flag.other_name.split())
    other = name if len(name) <= NAME_LIMIT else name[:NAME_LIMIT - 1] + "…"
    common = {"other": other, "number": flag.other_number or "?", "images": e["images"],
              "boxes": e["boxes"]}
    if flag.kind == SAME_PERSON:
        return t("flags.same_person", **common)
    typos = [html.escape(str(text)[:24], quote=False) for text in e.get("typos", [])]
    shown = ", ".join(f"<code>{text}</code>" for text in typos[:TYPOS_SHOWN])
    return t("flags.similar", close=e["close"], pixels=_decimal(t, e["pixels"]),
             typos=Raw(t("flags.typos", texts=Raw(shown)) if typos else ""), **common)


def flag_lines(t: Texts, flags: list[Flag]) -> list[str]:
    """Every flag, the pair kinds first (HTML lines)."""
    order = {SAME_PERSON: 0, SIMILAR: 1, TOO_FAST: 2}
    return [flag_line(t, f) for f in sorted(flags, key=lambda f: order.get(f.kind, 3))]
