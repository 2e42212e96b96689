"""Lists as CVAT serves them: simple filters, `filter=` JSON logic, `search=`, `sort=`, and
DRF's page-number pagination with CVAT's `page_size=all`."""

from __future__ import annotations

import json
from typing import Any
from urllib.parse import urlencode

from aiohttp import web

from .rest import ApiError, origin

__all__ = ["filter_rows", "int_or_400", "paginate"]


def paginate(request: web.Request, rows: list[dict[str, Any]]) -> dict[str, Any]:
    """DRF PageNumberPagination with CVAT's `page_size=all`."""
    q = request.query
    size_raw = q.get("page_size")
    if size_raw == "all":
        return {"count": len(rows), "next": None, "previous": None, "results": rows}
    size = 10
    if size_raw:
        try:
            size = max(int(size_raw), 1)
        except ValueError:
            size = 10
    page_raw = q.get("page", "1")
    try:
        page = int(page_raw) if page_raw != "last" else max((len(rows) - 1) // size + 1, 1)
    except ValueError:
        raise ApiError(404, {"detail": "Invalid page."}) from None
    pages = max((len(rows) - 1) // size + 1, 1)
    if page < 1 or page > pages:
        raise ApiError(404, {"detail": "Invalid page."})
    chunk = rows[(page - 1) * size : page * size]
    base = f"{origin(request)}{request.path}"

    def url(p: int | None) -> str:
        params = [(k, v) for k, v in q.items() if k != "page"]
        if p is not None:
            params.append(("page", str(p)))
        return base + ("?" + urlencode(params) if params else "")

    nxt = url(page + 1) if page < pages else None
    prev = None if page == 1 else (url(None) if page == 2 else url(page - 1))
    return {"count": len(rows), "next": nxt, "previous": prev, "results": chunk}


def filter_rows(
    request: web.Request,
    rows: list[tuple[dict[str, Any], dict[str, Any]]],
    simple: tuple[str, ...],
    search: tuple[str, ...],
    default_sort: str = "-id",
) -> list[dict[str, Any]]:
    """Apply CVAT's simple filters, `filter=` JSON logic, `search=` and `sort=`.

    Each row is (the fields filters see, the object the list answers)."""
    q = request.query
    out = rows
    for name in simple:
        if name in q:
            want = q[name]
            out = [r for r in out if _eq(r[0].get(name), want)]
    if q.get("filter"):
        try:
            logic = json.loads(q["filter"])
        except ValueError:
            raise ApiError(400, {"detail": "filter: Json syntax should be used"}) from None
        out = [r for r in out if _json_logic(logic, r[0])]
    if q.get("search"):
        needle = q["search"].lower()
        out = [r for r in out if any(needle in str(r[0].get(f) or "").lower() for f in search)]
    sort = q.get("sort") or default_sort
    for key in reversed([s.strip() for s in sort.split(",") if s.strip()]):
        desc = key.startswith("-")
        field = key.lstrip("-")
        out = sorted(
            out,
            key=lambda r, f=field: (r[0].get(f) is None, r[0].get(f) or 0),
            reverse=desc,
        )
    return [r[1] for r in out]


def int_or_400(raw: str, name: str) -> int:
    """A query parameter as an integer; 400 as DRF words it."""
    try:
        return int(raw)
    except ValueError:
        raise ApiError(400, {name: ["A valid integer is required."]}) from None


def _eq(value: Any, want: str) -> bool:
    if isinstance(value, bool):
        return str(value).lower() == want.lower() or (want in ("1", "0") and value == (want == "1"))
    if value is None:
        return False
    return str(value) == want


def _json_logic(rule: Any, row: dict[str, Any]) -> Any:
    """A small JSON-logic evaluator (the operators CVAT's filter backend accepts)."""
    if not isinstance(rule, dict):
        return rule
    if len(rule) != 1:
        raise ApiError(400, {"detail": "filter: invalid rule"})
    op, args = next(iter(rule.items()))
    if op == "var":
        name = args[0] if isinstance(args, list) else args
        if name not in row:
            raise ApiError(400, {"detail": f"filter: unknown field {name!r}"})
        return row[name]
    if not isinstance(args, list):
        args = [args]
    if op == "and":
        return all(_json_logic(a, row) for a in args)
    if op == "or":
        return any(_json_logic(a, row) for a in args)
    if op == "!":
        return not _json_logic(args[0], row)
    vals = [_json_logic(a, row) for a in args]
    try:
        if op in ("==", "==="):
            return vals[0] == vals[1]
        if op in ("!=", "!=="):
            return vals[0] != vals[1]
        if op == "<":
            return vals[0] is not None and vals[0] < vals[1]
        if op == "<=":
            return vals[0] is not None and vals[0] <= vals[1]
        if op == ">":
            return vals[0] is not None and vals[0] > vals[1]
        if op == ">=":
            return vals[0] is not None and vals[0] >= vals[1]
        if op == "in":
            return vals[1] is not None and vals[0] in vals[1]
    except TypeError:
        return False
    raise ApiError(400, {"detail": f"filter: unsupported operator {op!r}"})
