"""Telegram's formatted-text parsers (HTML, MarkdownV2) producing plain text plus entities.

The HTML parser follows tdlib's ``parse_html`` closely, including the wording of its errors
(byte offsets are UTF-8 byte offsets into the source, entity offsets are UTF-16 code units).
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Any

__all__ = [
    "EntityParseError",
    "detect_entities",
    "format_text",
    "parse_html",
    "parse_markdown_v2",
    "u16len",
]

_SPACES = " \t\r\n\f\v\0"

_TAG_TYPES: dict[str, str] = {
    "a": "text_link",
    "b": "bold",
    "strong": "bold",
    "i": "italic",
    "em": "italic",
    "u": "underline",
    "ins": "underline",
    "s": "strikethrough",
    "strike": "strikethrough",
    "del": "strikethrough",
    "tg-spoiler": "spoiler",
    "span": "spoiler",
    "code": "code",
    "pre": "pre",
    "blockquote": "blockquote",
    "tg-emoji": "custom_emoji",
}

_NAMED_ENTITIES = {"lt": "<", "gt": ">", "amp": "&", "quot": '"'}
_SPECIAL = re.compile(r"[<&]")
_ENTITY = re.compile(r"&(?:#(\d{1,8})|#[xX]([0-9a-fA-F]{1,8})|([a-zA-Z]+));")


class EntityParseError(ValueError):
    """Raised when formatted text can't be parsed; str() is the tdlib-style reason."""


def u16len(text: str) -> int:
    """Length of ``text`` in UTF-16 code units, as Telegram counts it."""
    if text.isascii():
        return len(text)
    return len(text.encode("utf-16-le", "surrogatepass")) // 2


def _byte_offset(src: str, index: int) -> int:
    return len(src[:index].encode("utf-8", "surrogatepass"))


def _decode_entity(src: str, i: int) -> tuple[str, int] | None:
    """Decode a character entity starting at src[i] == '&'; return (char, end) or None."""
    m = _ENTITY.match(src, i)
    if m is None:
        return None
    dec, hexa, name = m.groups()
    if name is not None:
        ch = _NAMED_ENTITIES.get(name)
        if ch is None:
            return None
        return ch, m.end()
    code = int(dec) if dec is not None else int(hexa, 16)
    if code == 0 or code > 0x10FFFF or 0xD800 <= code <= 0xDFFF:
        return None
    return chr(code), m.end()


@dataclass
class _Open:
    tag: str
    argument: str
    offset16: int
    out_index: int  # index into the output chunk list where this entity's text starts
    begin: int  # str index of '<' in the source
    attrs: dict[str, str] = field(default_factory=dict)


def parse_html(src: str, *, strict_entities: bool = True) -> tuple[str, list[dict[str, Any]]]:
    """Parse Telegram HTML into (plain text, entities); raise EntityParseError like Telegram.

    ``strict_entities`` also rejects a bare ``&`` that does not start a known character entity
    (the Bot API documentation requires ``&amp;``; real Telegram silently keeps such a ``&``).
    """
    out: list[str] = []
    off16 = 0
    stack: list[_Open] = []
    entities: list[dict[str, Any]] = []
    n = len(src)
    i = 0
    while i < n:
        m = _SPECIAL.search(src, i)
        j = m.start() if m else n
        if j > i:
            chunk = src[i:j]
            out.append(chunk)
            off16 += u16len(chunk)
            i = j
            if i >= n:
                break
        if src[i] == "&":
            decoded = _decode_entity(src, i)
            if decoded is not None:
                ch, i = decoded
                out.append(ch)
                off16 += u16len(ch)
                continue
            if strict_entities:
                raise EntityParseError(
                    f'Character "&" at byte offset {_byte_offset(src, i)} does not start a '
                    f"character entity; use &amp; (or &lt; &gt; &quot; &#NNN;)"
                )
            out.append("&")
            off16 += 1
            i += 1
            continue
        begin = i
        i += 1
        if i < n and src[i] == "/":
            i = _end_tag(src, i + 1, begin, stack, out, off16, entities)
        else:
            i = _start_tag(src, i, begin, stack, out, off16)
    if stack:
        raise EntityParseError(f'Can\'t find end tag corresponding to start tag "{stack[-1].tag}"')
    entities.sort(key=lambda e: (e["offset"], -e["length"]))
    return "".join(out), entities


def _start_tag(src: str, i: int, begin: int, stack: list[_Open], out: list[str], off16: int) -> int:
    n = len(src)
    name_start = i
    while i < n and src[i] not in _SPACES and src[i] != ">":
        i += 1
    if i >= n:
        raise EntityParseError(f"Unclosed start tag at byte offset {_byte_offset(src, begin)}")
    tag = src[name_start:i].lower()
    if tag not in _TAG_TYPES:
        raise EntityParseError(
            f'Unsupported start tag "{tag}" at byte offset {_byte_offset(src, begin)}'
        )
    argument = ""
    attrs: dict[str, str] = {}
    while i < n and src[i] != ">":
        while i < n and src[i] in _SPACES:
            i += 1
        if i < n and src[i] == ">":
            break
        attr_start = i
        while i < n and src[i] not in _SPACES and src[i] not in "=>":
            i += 1
        attr = src[attr_start:i].lower()
        if not attr:
            raise EntityParseError(
                f'Empty attribute name in the tag "{tag}" at byte offset {_byte_offset(src, begin)}'
            )
        while i < n and src[i] in _SPACES:
            i += 1
        if i >= n:
            raise EntityParseError(f"Unclosed start tag at byte offset {_byte_offset(src, begin)}")
        if src[i] != "=":
            if tag == "blockquote" and attr == "expandable":
                attrs[attr] = ""
                continue
            raise EntityParseError(
                f'Expected equal sign in declaration of an attribute of the tag "{tag}" '
                f"at byte offset {_byte_offset(src, begin)}"
            )
        i += 1
        while i < n and src[i] in _SPACES:
            i += 1
        if i >= n:
            raise EntityParseError(
                f'Unclosed start tag "{tag}" at byte offset {_byte_offset(src, begin)}'
            )
        if src[i] not in "'\"":
            token_start = i
            while i < n and (src[i].isalnum() or src[i] in ".-"):
                i += 1
            value = src[token_start:i].lower()
            if i >= n or (src[i] not in _SPACES and src[i] != ">"):
                raise EntityParseError(
                    f"Unexpected end of name token at byte offset {_byte_offset(src, token_start)}"
                )
        else:
            quote = src[i]
            i += 1
            chars: list[str] = []
            while i < n and src[i] != quote:
                if src[i] == "&":
                    decoded = _decode_entity(src, i)
                    if decoded is not None:
                        chars.append(decoded[0])
                        i = decoded[1]
                        continue
                chars.append(src[i])
                i += 1
            if i < n:
                i += 1
            value = "".join(chars)
        if i >= n:
            raise EntityParseError(f"Unclosed start tag at byte offset {_byte_offset(src, begin)}")
        attrs[attr] = value
        if tag == "a" and attr == "href":
            argument = value
        elif tag == "code" and attr == "class" and value.startswith("language-"):
            argument = value[len("language-") :]
        elif tag == "span" and attr == "class" and value.startswith("tg-"):
            argument = value[3:]
        elif tag == "tg-emoji" and attr == "emoji-id":
            argument = value
    if tag == "span" and argument != "spoiler":
        raise EntityParseError(
            f'Tag "span" must have class "tg-spoiler" at byte offset {_byte_offset(src, begin)}'
        )
    if tag == "tg-emoji" and not argument.isdigit():
        raise EntityParseError("Invalid custom emoji identifier specified")
    stack.append(_Open(tag, argument, off16, len(out), begin, attrs))
    return i + 1


def _end_tag(
    src: str,
    i: int,
    begin: int,
    stack: list[_Open],
    out: list[str],
    off16: int,
    entities: list[dict[str, Any]],
) -> int:
    n = len(src)
    if not stack:
        raise EntityParseError(f"Unexpected end tag at byte offset {_byte_offset(src, begin)}")
    name_start = i
    while i < n and src[i] not in _SPACES and src[i] != ">":
        i += 1
    name = src[name_start:i].lower()
    while i < n and src[i] in _SPACES:
        i += 1
    if i >= n or src[i] != ">":
        raise EntityParseError(f"Unclosed end tag at byte offset {_byte_offset(src, begin)}")
    top = stack[-1]
    if name and name != top.tag:
        raise EntityParseError(
            f"Unmatched end tag at byte offset {_byte_offset(src, begin)}, "
            f'expected "</{top.tag}>", found "</{name}>"'
        )
    stack.pop()
    length = off16 - top.offset16
    if length > 0:
        etype = _TAG_TYPES[top.tag]
        entity: dict[str, Any] = {"offset": top.offset16, "length": length, "type": etype}
        if top.tag == "a":
            entity["url"] = top.argument or "".join(out[top.out_index :])
        elif top.tag == "pre":
            last = entities[-1] if entities else None
            if (
                last is not None
                and last["type"] == "code"
                and last["offset"] == top.offset16
                and last["length"] == length
                and last.get("_language")
            ):
                entities.pop()
                entity["language"] = last["_language"]
        elif top.tag == "code" and top.argument:
            entity["_language"] = top.argument
        elif top.tag == "blockquote" and "expandable" in top.attrs:
            entity["type"] = "expandable_blockquote"
        elif top.tag == "tg-emoji":
            entity["custom_emoji_id"] = top.argument
        entities.append(entity)
    return i + 1


# --------------------------------------------------------------------------- MarkdownV2

_MD_RESERVED = set("_*[]()~`>#+-=|{}.!")


def parse_markdown_v2(src: str) -> tuple[str, list[dict[str, Any]]]:
    """Parse MarkdownV2 into (plain text, entities); raise EntityParseError like Telegram."""
    out: list[str] = []
    off16 = 0
    stack: list[tuple[str, int, int]] = []  # (marker, offset16, src index)
    entities: list[dict[str, Any]] = []
    n = len(src)
    i = 0

    def emit(ch: str) -> None:
        nonlocal off16
        out.append(ch)
        off16 += u16len(ch)

    while i < n:
        c = src[i]
        if c == "\\" and i + 1 < n and 0 < ord(src[i + 1]) <= 126:
            emit(src[i + 1])
            i += 2
            continue
        if c == "`":
            if src.startswith("```", i):
                end = src.find("```", i + 3)
                if end < 0:
                    raise EntityParseError(
                        f"Can't find end of Pre entity at byte offset {_byte_offset(src, i)}"
                    )
                body = src[i + 3 : end]
                language = ""
                nl = body.find("\n")
                if nl >= 0 and body[:nl].strip() and " " not in body[:nl].strip():
                    language, body = body[:nl].strip(), body[nl + 1 :]
                elif body.startswith("\n"):
                    body = body[1:]
                body = re.sub(r"\\([`\\])", r"\1", body)
                start16 = off16
                emit(body)
                if off16 > start16:
                    ent: dict[str, Any] = {"offset": start16, "length": off16 - start16}
                    ent["type"] = "pre"
                    if language:
                        ent["language"] = language
                    entities.append(ent)
                i = end + 3
                continue
            end = i + 1
            while end < n and src[end] != "`":
                end += 2 if src[end] == "\\" else 1
            if end >= n:
                raise EntityParseError(
                    f"Can't find end of Code entity at byte offset {_byte_offset(src, i)}"
                )
            body = re.sub(r"\\([`\\])", r"\1", src[i + 1 : end])
            start16 = off16
            emit(body)
            if off16 > start16:
                entities.append({"offset": start16, "length": off16 - start16, "type": "code"})
            i = end + 1
            continue
        marker = None
        if c in "*_~|":
            if c == "_" and src.startswith("__", i):
                marker = "__"
            elif c == "|" and src.startswith("||", i):
                marker = "||"
            elif c != "|":
                marker = c
        if marker is not None:
            if stack and stack[-1][0] == marker:
                mk, start16, _ = stack.pop()
                if off16 > start16:
                    etype = {
                        "*": "bold",
                        "_": "italic",
                        "__": "underline",
                        "~": "strikethrough",
                        "||": "spoiler",
                    }[mk]
                    entities.append({"offset": start16, "length": off16 - start16, "type": etype})
            else:
                stack.append((marker, off16, i))
            i += len(marker)
            continue
        if c == "[":
            stack.append(("[", off16, i))
            i += 1
            continue
        if c == "]" and stack and stack[-1][0] == "[":
            _, start16, _ = stack.pop()
            if not src.startswith("(", i + 1):
                raise EntityParseError(
                    f"Can't find end of a URL at byte offset {_byte_offset(src, i)}"
                )
            end = src.find(")", i + 2)
            while end > 0 and src[end - 1] == "\\":
                end = src.find(")", end + 1)
            if end < 0:
                raise EntityParseError(
                    f"Can't find end of a URL at byte offset {_byte_offset(src, i)}"
                )
            url = re.sub(r"\\([)\\])", r"\1", src[i + 2 : end])
            if off16 > start16:
                entities.append(
                    {"offset": start16, "length": off16 - start16, "type": "text_link", "url": url}
                )
            i = end + 1
            continue
        if c in _MD_RESERVED:
            raise EntityParseError(
                f"Character '{c}' is reserved and must be escaped with the preceding '\\'"
            )
        emit(c)
        i += 1
    if stack:
        mk, _, pos = stack[-1]
        name = {"*": "Bold", "_": "Italic", "__": "Underline", "~": "Strikethrough"}.get(
            mk, "Spoiler" if mk == "||" else "TextUrl"
        )
        raise EntityParseError(
            f"Can't find end of {name} entity at byte offset {_byte_offset(src, pos)}"
        )
    entities.sort(key=lambda e: (e["offset"], -e["length"]))
    return "".join(out), entities


# --------------------------------------------------------------------------- auto entities

_AUTO = re.compile(
    r"(?P<bot_command>(?<![\w/])/[A-Za-z0-9_]{1,64}(?:@[A-Za-z0-9_]{3,32})?)(?![\w/])"
    r"|(?P<url>\bhttps?://[^\s<>\"]+[^\s<>\"'.,;:!?)\]])"
    r"|(?P<mention>(?<![\w@])@[A-Za-z][A-Za-z0-9_]{3,31}\b)"
    r"|(?P<hashtag>(?<![\w#])#\w*[^\W\d]\w*)"
)
_NO_AUTO_INSIDE = {"code", "pre", "text_link", "url", "custom_emoji"}


def detect_entities(text: str, entities: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Add the entities Telegram detects by itself (bot_command, url, mention, hashtag)."""
    if not any(ch in text for ch in "/@#:"):
        return entities
    found: list[dict[str, Any]] = []
    for m in _AUTO.finditer(text):
        start = u16len(text[: m.start()])
        length = u16len(m.group(0))
        blocked = any(
            e["type"] in _NO_AUTO_INSIDE
            and e["offset"] < start + length
            and start < e["offset"] + e["length"]
            for e in entities
        )
        if not blocked:
            found.append({"offset": start, "length": length, "type": m.lastgroup})
    if not found:
        return entities
    merged = entities + found
    merged.sort(key=lambda e: (e["offset"], -e["length"]))
    return merged


def _trim(text: str, entities: list[dict[str, Any]]) -> tuple[str, list[dict[str, Any]]]:
    stripped_left = text.lstrip()
    lead = u16len(text[: len(text) - len(stripped_left)])
    result = stripped_left.rstrip()
    if lead == 0 and len(result) == len(text):
        return text, entities
    total = u16len(result)
    fixed: list[dict[str, Any]] = []
    for e in entities:
        start = max(0, e["offset"] - lead)
        end = min(total, e["offset"] + e["length"] - lead)
        if end > start:
            fixed.append({**e, "offset": start, "length": end - start})
    return result, fixed


def format_text(
    text: str,
    parse_mode: str | None,
    entities: list[dict[str, Any]] | None = None,
    *,
    strict_entities: bool = True,
) -> tuple[str, list[dict[str, Any]]]:
    """Turn a bot's text + parse_mode (or explicit entities) into Telegram's (text, entities)."""
    mode = (parse_mode or "").strip()
    if entities:
        parsed_text, parsed = text, [dict(e) for e in entities]
    elif not mode:
        parsed_text, parsed = text, []
    elif mode.lower() == "html":
        parsed_text, parsed = parse_html(text, strict_entities=strict_entities)
        for e in parsed:
            e.pop("_language", None)
    elif mode.lower() == "markdownv2":
        parsed_text, parsed = parse_markdown_v2(text)
    elif mode.lower() == "markdown":
        parsed_text, parsed = _parse_markdown_legacy(text)
    else:
        raise ValueError("unsupported parse_mode")
    parsed_text, parsed = _trim(parsed_text, parsed)
    return parsed_text, detect_entities(parsed_text, parsed)


def _parse_markdown_legacy(src: str) -> tuple[str, list[dict[str, Any]]]:
    """The old Markdown mode: *bold* _italic_ `code` ```pre``` [text](url), no nesting."""
    out: list[str] = []
    entities: list[dict[str, Any]] = []
    off16 = 0
    i = 0
    n = len(src)
    while i < n:
        c = src[i]
        if c in "*_`[":
            if src.startswith("```", i):
                end = src.find("```", i + 3)
                close, etype, body_start = end, "pre", i + 3
                skip = 3
            elif c == "[":
                close = src.find("](", i)
                etype, body_start, skip = "text_link", i + 1, 1
            else:
                close = src.find(c, i + 1)
                etype = {"*": "bold", "_": "italic", "`": "code"}[c]
                body_start, skip = i + 1, 1
            if close < 0:
                raise EntityParseError(
                    f"Can't find end of the entity starting at byte offset {_byte_offset(src, i)}"
                )
            body = src[body_start:close]
            ent: dict[str, Any] = {"offset": off16, "length": u16len(body), "type": etype}
            if etype == "text_link":
                url_end = src.find(")", close + 2)
                if url_end < 0:
                    raise EntityParseError(
                        f"Can't find end of a URL at byte offset {_byte_offset(src, close)}"
                    )
                ent["url"] = src[close + 2 : url_end]
                i = url_end + 1
            else:
                i = close + skip
            out.append(body)
            off16 += ent["length"]
            if ent["length"]:
                entities.append(ent)
            continue
        if c == "\\" and i + 1 < n and src[i + 1] in "*_`[":
            c = src[i + 1]
            i += 1
        out.append(c)
        off16 += u16len(c)
        i += 1
    return "".join(out), entities
