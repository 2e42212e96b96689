"""The export as its reader sees it: headers, glossary, band and status words in their
language, times in TIMEZONE, the CSV's separator and decimal mark for their Excel, links to
the CVAT jobs."""

from __future__ import annotations

import re
from typing import Any

from bot_files.presentation.flags import flag_line
from bot_files.presentation.verdicts import failing_gates, plain
from bot_files.texts import Texts
from config.env import Settings
from tasks_metrics.to_handlers import (
    ATTEMPT_COLUMNS,
    CANDIDATE_COLUMNS,
    ExportLocale,
    Flag,
    Verdict,
    stored_list,
)

_TAG = re.compile(r"<[^>]+>")
# Excel's list separator and decimal mark by language (a Russian Excel splits on ";" and
# reads "0,5").
_CSV_FORMAT = {"ru": (";", ","), "en": (",", ".")}
_WORDS = ("sheet_candidates", "sheet_attempts", "sheet_glossary", "glossary_column",
          "glossary_meaning", "glossary_note", "band_pass", "band_borderline", "band_fail",
          "status_creating", "status_ready", "status_submitted", "status_graded",
          "status_failed", "status_expired", "decision_invite", "decision_reject",
          "decision_hold")


def export_locale(t: Texts, settings: Settings) -> ExportLocale:
    """The files in the reader's words, time zone and locale."""
    keys = {c.key for c in (*CANDIDATE_COLUMNS, *ATTEMPT_COLUMNS)}

    def describe(band: Any, gates: Any) -> str:
        return plain(failing_gates(t, Verdict.from_stored(band, gates), limit=len(gates or ())))

    def describe_flags(value: Any) -> str:
        return "; ".join(plain(_TAG.sub("", flag_line(t, Flag(
            str(f.get("kind")), 0, f.get("evidence") or {}, f.get("other_attempt"),
            f.get("other_candidate"), str(f.get("other_name") or ""), f.get("other_number")))))
            for f in stored_list(value))

    separator, decimal = _CSV_FORMAT.get(t.language, _CSV_FORMAT["en"])
    return ExportLocale(
        headers={k: plain(t(f"export.col_{k}")) for k in keys},
        glossary={k: plain(t(f"export.gloss_{k}")) for k in keys},
        words={w: plain(t(f"export.{w}", zone="{zone}")) for w in _WORDS},
        zone=settings.zone, zone_name=settings.timezone, separator=separator, decimal=decimal,
        cvat_link=settings.cvat_link, describe_gates=describe, describe_flags=describe_flags)
