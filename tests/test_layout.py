"""The house rules of the bot's layout hold: handlers are independent of one another (what
several share lives in bot_files outside handlers/), and main.py assembles handlers only
through the handlers package's routers."""

from __future__ import annotations

import ast
from pathlib import Path

from config.env import PROJECT_DIR

HANDLERS = "bot_files.handlers"


def _imports(path: Path) -> set[str]:
    """The modules a file imports from (`from x import y` counts as x.y too)."""
    found: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            found |= {alias.name for alias in node.names}
        elif isinstance(node, ast.ImportFrom) and node.module:
            found.add(node.module)
            found |= {f"{node.module}.{alias.name}" for alias in node.names}
    return found


def test_no_handler_module_imports_another() -> None:
    root = PROJECT_DIR / "bot_files" / "handlers"
    modules = [p for p in root.rglob("*.py") if p.name != "__init__.py"]
    assert len(modules) >= 15  # one module per flow
    offenders = {str(p.relative_to(PROJECT_DIR)): sorted(m for m in _imports(p)
                                                         if m.startswith(HANDLERS))
                 for p in modules}
    assert {path: found for path, found in offenders.items() if found} == {}


def test_main_reaches_handlers_only_through_their_routers() -> None:
    handler_imports = {m for m in _imports(PROJECT_DIR / "main.py") if m.startswith(HANDLERS)}
    assert handler_imports == {HANDLERS, f"{HANDLERS}.get_routers"}
