"""HR exports: every candidate (the latest graded attempt) and every attempt, as a formatted
XLSX (with a glossary sheet) and a CSV in the reader's words, time zone and locale, built from
pandas frames; a summary and a score histogram.

The XLSX is fast on purpose (10,000 candidates in well under a second): openpyxl lays out the
workbook (styles, widths, header, filters, pass/fail colours) with one prototype data row per
sheet, and the data rows are then written as sheet XML directly, reusing the prototype's style
of each column. Floats are written with `repr`, so the file holds the stored numbers exactly.
"""

from __future__ import annotations

import io
import re
import zipfile
from collections import Counter
from datetime import datetime
from typing import Any
from xml.sax.saxutils import escape

import numpy as np
import pandas as pd
from openpyxl import Workbook
from openpyxl.formatting.rule import FormulaRule
from openpyxl.styles import Alignment, Font, PatternFill
from openpyxl.utils import get_column_letter
from PIL import Image, ImageDraw

from tasks_metrics.export_data import (
    ATTEMPT_COLUMNS,
    BAND,
    CANDIDATE_COLUMNS,
    DATE,
    DECISION,
    FLAGS,
    FLOAT,
    GATES,
    INT,
    LINK,
    PERCENT,
    STATUS,
    TEXT,
    Column,
    ExportLocale,
    ExportRows,
    Exports,
    Summary,
    stored_list,
)
from tasks_metrics.generation import get_font

_WIDTHS = {TEXT: 18, DATE: 17, INT: 10, FLOAT: 11, GATES: 40, PERCENT: 11, BAND: 12,
           STATUS: 12, DECISION: 12, LINK: 30, FLAGS: 40}
_NUMBER_FORMATS = {INT: "0", FLOAT: "0.0", DATE: "yyyy-mm-dd hh:mm", TEXT: "@", GATES: "@",
                   PERCENT: "0.0%", BAND: "@", STATUS: "@", DECISION: "@", LINK: "@",
                   FLAGS: "@"}
_SPECIAL_WIDTHS = {"full_name": 26, "telegram_id": 13}
_TEXT_KINDS = (TEXT, GATES, BAND, STATUS, DECISION, LINK, FLAGS)
_HEADER_FILL = PatternFill("solid", fgColor="1F4E78")
_BAND_FILLS = {"pass": "C6EFCE", "borderline": "FFEB9C", "fail": "FFC7CE"}
_EXCEL_EPOCH = pd.Timestamp("1899-12-30")
_BAD_XML = re.compile("[\x00-\x08\x0b\x0c\x0e-\x1f\ufffe\uffff]")
_CSV_FORMULA_START = ("=", "+", "-", "@", "\t", "\r")


def raw_frames(rows: ExportRows) -> tuple[pd.DataFrame, pd.DataFrame]:
    """The candidates and attempts as the database gave them."""
    return (pd.DataFrame.from_records(rows.candidates, columns=rows.candidate_columns),
            pd.DataFrame.from_records(rows.attempts, columns=rows.attempt_columns))


def _job_links(frame: pd.DataFrame, cvat_link: str) -> pd.Series:
    if not cvat_link or "cvat_job_id" not in frame:
        return pd.Series([None] * len(frame), dtype=object)
    base = cvat_link.rstrip("/")
    return pd.Series([f"{base}/tasks/{int(t)}/jobs/{int(j)}" if pd.notna(t) and pd.notna(j)
                      else None for t, j in zip(frame["cvat_task_id"], frame["cvat_job_id"],
                                                strict=True)], dtype=object)


def typed(frame: pd.DataFrame, columns: tuple[Column, ...],
          locale: ExportLocale) -> pd.DataFrame:
    """The sheet's columns, in order, typed, in the reader's words (bands, statuses, gates)
    and time zone; numbers stay exact."""
    describe = locale.describe_gates or describe_gates_plain
    describe_flags = locale.describe_flags or describe_flags_plain
    out = {}
    for column in columns:
        name, kind = column.key, column.kind
        if kind == LINK:
            out[name] = _job_links(frame, locale.cvat_link)
            continue
        series = frame[name] if name in frame else pd.Series([None] * len(frame), dtype=object)
        if kind in (FLOAT, PERCENT):
            series = pd.to_numeric(series, errors="coerce").astype("float64")
        elif kind == INT:
            series = pd.to_numeric(series, errors="coerce").astype("Int64")
        elif kind == DATE:
            series = pd.to_datetime(series, utc=True).dt.tz_convert(locale.zone)
        elif kind == GATES:
            series = pd.Series([describe(b, g) if b else None
                                for b, g in zip(frame["band"], series, strict=True)],
                               dtype=object)
        elif kind == FLAGS:
            series = pd.Series([describe_flags(v) if flags_list(v) else None for v in series],
                               dtype=object)
        elif kind in (BAND, STATUS, DECISION):
            series = series.map(lambda v, p=kind: None if v is None or pd.isna(v)
                                else locale.word(f"{p}_{v}", str(v))).astype(object)
        else:
            series = series.astype(object).where(series.notna(), None)
        out[name] = series.reset_index(drop=True)
    return pd.DataFrame(out)


def _gates_list(value: Any) -> list[dict[str, Any]]:
    """The stored gates of an attempt."""
    return stored_list(value)


def flags_list(value: Any) -> list[dict[str, Any]]:
    """An attempt's flags as the export query gives them."""
    return stored_list(value)


def describe_flags_plain(value: Any) -> str:
    """The flags in the machine's words ("too fast: 47 objects in 60 s"): the default when no
    reader's language is given."""
    parts = []
    for flag in flags_list(value):
        e = flag.get("evidence") or {}
        if flag.get("kind") == "too_fast":
            parts.append(f"too fast: {e.get('objects')} objects in {e.get('seconds')} s"
                         f" ({e.get('per_object')} s an object)")
            continue
        typos = e.get("typos") or []
        parts.append(f"{str(flag.get('kind')).replace('_', ' ')} to candidate"
                     f" {flag.get('other_candidate')} attempt {flag.get('other_number')}:"
                     f" {e.get('close')} of {e.get('boxes')} boxes within {e.get('pixels')} px"
                     f" on {e.get('images')} shared images"
                     + (f", the same wrong plates {typos}" if typos else ""))
    return "; ".join(parts)


def describe_gates_plain(band: Any, gates: Any) -> str:
    """The gates below pass in the machine's words ("car_recall 0.692 < 0.95"), worst first:
    the default when no reader's language is given."""
    below = [g for g in _gates_list(gates) if g.get("band") in ("fail", "borderline")]
    below.sort(key=lambda g: g.get("band") != "fail")
    return "; ".join(f"{g.get('measure')} {g.get('value', 0):.3f} < {g.get('pass_at')}"
                     for g in below if isinstance(g.get("value"), int | float))


def summarize(candidates: pd.DataFrame) -> Summary:
    """Counts, medians and gates below pass for the summary message (from the raw rows)."""
    band = candidates["band"]
    graded = candidates[band.notna()]
    below: Counter[str] = Counter(
        str(g.get("measure")) for gates in graded["failed_gates"] for g in _gates_list(gates)
        if g.get("band") in ("fail", "borderline"))
    medians: dict[str, float | None] = {}
    for name in ("score", "car_iou", "plate_iou", "plate_accuracy", "time_spent_min"):
        value = pd.to_numeric(graded[name], errors="coerce").median() if len(graded) else None
        medians[name] = None if value is None or pd.isna(value) else float(value)
    submitted = pd.to_numeric(candidates["attempts_submitted"], errors="coerce").fillna(0)
    return Summary(
        candidates=len(candidates),
        submitted=int((submitted > 0).sum()),
        graded=len(graded),
        passed=int((band == "pass").sum()),
        borderline=int((band == "borderline").sum()),
        failed=int((band == "fail").sum()),
        medians=medians,
        below_pass=dict(below.most_common()),
    )


def build_exports(rows: ExportRows, locale: ExportLocale | None = None) -> Exports:
    """XLSX (candidates, attempts, glossary), CSV and summary from the export rows, as
    `locale` reads them (blocking: run in a thread)."""
    locale = locale or ExportLocale()
    raw_candidates, raw_attempts = raw_frames(rows)
    summary = summarize(raw_candidates)
    candidates = typed(raw_candidates, CANDIDATE_COLUMNS, locale)
    attempts = typed(raw_attempts, ATTEMPT_COLUMNS, locale)
    xlsx = build_xlsx({locale.word("sheet_candidates", "Candidates"):
                       (candidates, CANDIDATE_COLUMNS),
                       locale.word("sheet_attempts", "Attempts"): (attempts, ATTEMPT_COLUMNS)},
                      locale)
    graded = raw_candidates[pd.to_numeric(raw_candidates["score"], errors="coerce").notna()]
    scores = list(zip(pd.to_numeric(graded["score"]).tolist(), graded["band"].tolist(),
                      strict=True))
    return Exports(xlsx=xlsx, csv=build_csv(candidates, locale), summary=summary,
                   scores=scores)


# --- CSV -----------------------------------------------------------------------------------


def build_csv(candidates: pd.DataFrame, locale: ExportLocale | None = None) -> bytes:
    """The candidates sheet as a CSV Excel opens right in the reader's locale: UTF-8 with a
    BOM (Cyrillic names), the locale's separator and decimal mark (";" and "," for Russian),
    shares as percentages, times in the reader's zone. Text a spreadsheet would run as a
    formula is prefixed with an apostrophe."""
    locale = locale or ExportLocale()
    frame = candidates.copy()
    for column in CANDIDATE_COLUMNS:
        if column.kind in _TEXT_KINDS:
            frame[column.key] = frame[column.key].map(_csv_safe)
        elif column.kind == PERCENT and locale.headers:
            frame[column.key] = (frame[column.key] * 100).round(1)
        elif column.kind == DATE and locale.headers:
            frame[column.key] = frame[column.key].dt.strftime("%Y-%m-%d %H:%M")
    frame.columns = [locale.header(c) for c in CANDIDATE_COLUMNS]
    return frame.to_csv(index=False, sep=locale.separator,
                        decimal=locale.decimal).encode("utf-8-sig")


def _csv_safe(value: Any) -> Any:
    if isinstance(value, str) and value.startswith(_CSV_FORMULA_START):
        return "'" + value
    return value


# --- XLSX ----------------------------------------------------------------------------------


Sheets = dict[str, tuple[pd.DataFrame, tuple[Column, ...]]]


def build_xlsx(sheets: Sheets, locale: ExportLocale | None = None) -> bytes:
    """A formatted workbook: bold header in the reader's words, widths, number formats,
    filters, the header row and the name column frozen, rows coloured by band (conditional
    formatting), one sheet per entry, then the glossary."""
    locale = locale or ExportLocale()
    wb = Workbook()
    wb.remove(wb.active)
    for title, (frame, columns) in sheets.items():
        _layout_sheet(wb, title, columns, len(frame), locale)
    _glossary(wb, [c for _, columns in sheets.values() for c in columns], locale)
    skeleton = io.BytesIO()
    wb.save(skeleton)
    bodies = {f"xl/worksheets/sheet{i}.xml": (frame, columns)
              for i, (frame, columns) in enumerate(sheets.values(), start=1)}
    out = io.BytesIO()
    with zipfile.ZipFile(io.BytesIO(skeleton.getvalue())) as source, \
            zipfile.ZipFile(out, "w", zipfile.ZIP_DEFLATED, compresslevel=1) as target:
        for item in source.infolist():
            data = source.read(item.filename)
            if item.filename in bodies:
                frame, columns = bodies[item.filename]
                data = _fill_sheet(data.decode("utf-8"), frame, columns).encode("utf-8")
            target.writestr(item.filename, data)
    return out.getvalue()


def _glossary(wb: Workbook, columns: list[Column], locale: ExportLocale) -> None:
    """One line per column: its header and what it means."""
    ws = wb.create_sheet(locale.word("sheet_glossary", "Glossary"))
    bold = Font(bold=True, color="FFFFFF")
    for index, text in enumerate((locale.word("glossary_column", "Column"),
                                  locale.word("glossary_meaning", "What it means")), start=1):
        cell = ws.cell(row=1, column=index, value=text)
        cell.font, cell.fill = bold, _HEADER_FILL
    seen: set[str] = set()
    row = 2
    for column in columns:
        if column.key in seen:
            continue
        seen.add(column.key)
        ws.cell(row=row, column=1, value=locale.header(column)).font = Font(bold=True)
        ws.cell(row=row, column=2, value=locale.glossary.get(column.key, ""))
        row += 1
    note = locale.word("glossary_note", "")
    if note:
        ws.cell(row=row + 1, column=1, value=note.format(zone=locale.zone_name))
    ws.column_dimensions["A"].width = 32
    ws.column_dimensions["B"].width = 100
    ws.freeze_panes = "A2"


def _layout_sheet(wb: Workbook, title: str, columns: tuple[Column, ...], rows: int,
                  locale: ExportLocale) -> None:
    ws = wb.create_sheet(title)
    bold = Font(bold=True, color="FFFFFF")
    for index, column in enumerate(columns, start=1):
        header = ws.cell(row=1, column=index, value=locale.header(column))
        header.font = bold
        header.fill = _HEADER_FILL
        header.alignment = Alignment(horizontal="center", vertical="center", wrap_text=True)
        # The prototype row: its style per column is copied onto every data row.
        prototype = ws.cell(row=2, column=index, value=_PROTOTYPE_VALUES[column.kind])
        prototype.number_format = "0" if column.key.endswith("_id") else \
            _NUMBER_FORMATS[column.kind]
        letter = get_column_letter(index)
        ws.column_dimensions[letter].width = _SPECIAL_WIDTHS.get(column.key,
                                                                 _WIDTHS[column.kind])
    ws.row_dimensions[1].height = 45
    ws.freeze_panes = "B2"  # the header row and the name stay in view
    last = get_column_letter(len(columns))
    end = max(rows + 1, 2)
    ws.auto_filter.ref = f"A1:{last}{end}"
    band_index = [c.key for c in columns].index("band") + 1
    band = get_column_letter(band_index)
    for value, colour in _BAND_FILLS.items():
        word = locale.word(f"band_{value}", value).replace('"', '""')
        ws.conditional_formatting.add(
            f"A2:{last}{end}",
            FormulaRule(formula=[f'${band}2="{word}"'],
                        fill=PatternFill("solid", fgColor=colour, bgColor=colour)))


_PROTOTYPE_VALUES: dict[str, Any] = {INT: 0, FLOAT: 0.5, PERCENT: 0.5, TEXT: "x", GATES: "x",
                                     BAND: "x", STATUS: "x", DECISION: "x", LINK: "x", FLAGS: "x",
                                     DATE: datetime(2000, 1, 1)}
_ROW2 = re.compile(r'<row r="2"[^>]*>.*?</row>', re.S)
_CELL_STYLE = re.compile(r'<c r="([A-Z]+)2"(?: s="(\d+)")?')
_DIMENSION = re.compile(r'<dimension ref="[^"]*"/>')


def _fill_sheet(xml: str, frame: pd.DataFrame, columns: tuple[Column, ...]) -> str:
    prototype = _ROW2.search(xml)
    if prototype is None:
        raise RuntimeError("the sheet skeleton has no prototype row")
    styles = {letter: style or "0" for letter, style in _CELL_STYLE.findall(prototype.group(0))}
    cells_by_column = []
    for index, column in enumerate(columns, start=1):
        letter = get_column_letter(index)
        cells_by_column.append(_column_cells(frame[column.key], column.kind, letter,
                                             styles.get(letter, "0")))
    body = "".join(
        f'<row r="{number}">{"".join(cells)}</row>'
        for number, cells in enumerate(zip(*cells_by_column, strict=True), start=2)
    ) if len(frame) else ""
    last = get_column_letter(len(columns))
    xml = xml[:prototype.start()] + body + xml[prototype.end():]
    return _DIMENSION.sub(f'<dimension ref="A1:{last}{len(frame) + 1}"/>', xml, count=1)


def _column_cells(series: pd.Series, kind: str, letter: str, style: str) -> list[str]:
    """The XML of one column's cells, row 2 on (empty string for a missing value)."""
    start = 2
    if kind in _TEXT_KINDS:
        return [
            "" if value is None else
            f'<c r="{letter}{row}" s="{style}" t="inlineStr"><is><t xml:space="preserve">'
            f'{escape(_BAD_XML.sub("", str(value)))}</t></is></c>'
            for row, value in enumerate(series.tolist(), start=start)
        ]
    if kind == DATE:
        # Local wall-clock time (the zone is in the header): what the reader's Excel shows.
        serial = (series.dt.tz_localize(None) - _EXCEL_EPOCH) / pd.Timedelta(days=1)
        values = serial.to_numpy(dtype="float64", na_value=np.nan).tolist()
        return ["" if value != value else f'<c r="{letter}{row}" s="{style}"><v>{value!r}</v></c>'
                for row, value in enumerate(values, start=start)]
    if kind == INT:
        return ["" if value is None or value is pd.NA else
                f'<c r="{letter}{row}" s="{style}"><v>{int(value)}</v></c>'
                for row, value in enumerate(series.astype(object).tolist(), start=start)]
    values = series.to_numpy(dtype="float64", na_value=np.nan).tolist()
    return ["" if value != value or value in (np.inf, -np.inf) else
            f'<c r="{letter}{row}" s="{style}"><v>{value!r}</v></c>'
            for row, value in enumerate(values, start=start)]


# --- the chart -----------------------------------------------------------------------------


_BAND_COLOURS = {"pass": (99, 190, 123), "borderline": (255, 204, 0), "fail": (230, 90, 90)}


def score_histogram(scores: list[tuple[float, str]], *, title: str, x_label: str,
                    y_label: str, legend: dict[str, str] | None = None, bins: int = 10) -> bytes:
    """PNG bar chart of the score distribution; each bar is stacked by the candidates' bands
    (the band comes from the pass rule's gates, not from the score), with a legend."""
    width, height = 900, 560
    left, right, top, bottom = 80, 30, 70, 90
    image = Image.new("RGB", (width, height), "white")
    draw = ImageDraw.Draw(image)
    title_font, font, small = get_font(26), get_font(18), get_font(15)
    values = np.clip(np.asarray([s for s, _ in scores], dtype=float), 0.0, 1.0)
    bands = [b if b in _BAND_COLOURS else "fail" for _, b in scores]
    edges = np.linspace(0.0, 1.0, bins + 1)
    index = np.minimum((values * bins).astype(int), bins - 1) if len(scores) else values
    stacks: list[Counter[str]] = [Counter() for _ in range(bins)]
    for i, band in zip(np.asarray(index, dtype=int).tolist(), bands, strict=True):
        stacks[i][band] += 1
    peak = max([sum(c.values()) for c in stacks] + [1])
    plot_w, plot_h = width - left - right, height - top - bottom
    draw.text((width / 2, 28), title, fill="black", font=title_font, anchor="mm")
    draw.line([(left, top), (left, top + plot_h), (left + plot_w, top + plot_h)],
              fill="black", width=2)
    for value in sorted({round(peak * step / 4) for step in range(5)}):
        y = top + plot_h - plot_h * value / peak
        draw.line([(left - 5, y), (left + plot_w, y)], fill=(225, 225, 225), width=1)
        draw.text((left - 10, y), str(value), fill="black", font=small, anchor="rm")
    bar_w = plot_w / bins
    for i, stack in enumerate(stacks):
        x0 = left + i * bar_w + 4
        x1 = left + (i + 1) * bar_w - 4
        base = top + plot_h - 1
        for band in ("fail", "borderline", "pass"):
            if stack[band]:
                y0 = base - plot_h * stack[band] / peak
                draw.rectangle((x0, y0, x1, base), fill=_BAND_COLOURS[band],
                               outline=(60, 60, 60))
                base = y0
        if stack:
            draw.text(((x0 + x1) / 2, base - 12), str(sum(stack.values())), fill="black",
                      font=small, anchor="mm")
        draw.text((left + i * bar_w, top + plot_h + 16), f"{edges[i]:.1f}", fill="black",
                  font=small, anchor="mm")
    draw.text((left + plot_w, top + plot_h + 16), "1.0", fill="black", font=small, anchor="mm")
    draw.text((left + plot_w / 2, height - 30), x_label, fill="black", font=font, anchor="mm")
    draw.text((16, top - 30), y_label, fill="black", font=font, anchor="lm")
    x = left + 20
    for band, label in (legend or {}).items():
        if band in _BAND_COLOURS:
            draw.rectangle((x, top + 6, x + 16, top + 22), fill=_BAND_COLOURS[band],
                           outline=(60, 60, 60))
            draw.text((x + 22, top + 14), label, fill="black", font=small, anchor="lm")
            x += 40 + draw.textlength(label, font=small)
    out = io.BytesIO()
    image.save(out, format="PNG", optimize=False)
    return out.getvalue()
