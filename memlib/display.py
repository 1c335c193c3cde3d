"""Text as shown to people (dashboard tables, chart labels, the CLI's table output): control, format and
bidirectional characters made visible instead of interpreted.

``visible("\\u202egnp.exe")`` -> ``"\\\\u202egnp.exe"``: a right-to-left override, an isolate, a zero-width or
line-separator character, C0/C1 controls, newline, tab and ESC are shown as escapes (``\\n``, ``\\t``, ``\\r``,
``\\xNN``, ``\\uNNNN``, ``\\UNNNNNNNN``), so a name cannot reorder, hide or split what is displayed around it.
Every other character (accents, CJK, emoji) is kept. The data itself is not changed: downloads, CSV/JSON/Parquet
output and filters see the real text.
"""

from __future__ import annotations

import re

import pandas as pd

# Unicode categories Cc (controls), Cf (format: bidi marks, embeddings, overrides, isolates, zero-width, BOM, tags),
# Zl and Zp (line and paragraph separators); tests/test_display.py checks this class against unicodedata.
_INVISIBLE_RE = re.compile(
    "[\x00-\x1f\x7f-\x9f\xad\u0600-\u0605\u061c\u06dd\u070f\u0890\u0891\u08e2\u180e\u200b-\u200f\u2028-\u202e"
    "\u2060-\u2064\u2066-\u206f\ufeff\ufff9-\ufffb\U000110bd\U000110cd\U00013430-\U0001343f\U0001bca0-\U0001bca3"
    "\U0001d173-\U0001d17a\U000e0001\U000e0020-\U000e007f]"
)
_NAMED = {"\n": "\\n", "\t": "\\t", "\r": "\\r"}


def _escape(match: re.Match[str]) -> str:
    ch = match.group(0)
    named = _NAMED.get(ch)
    if named is not None:
        return named
    code = ord(ch)
    if code < 0x100:
        return f"\\x{code:02x}"
    return f"\\u{code:04x}" if code < 0x10000 else f"\\U{code:08x}"


def visible(text: object) -> str:
    """Any value -> its text with control, format and bidi characters as visible escapes (others unchanged)."""
    s = text if isinstance(text, str) else str(text)
    return _INVISIBLE_RE.sub(_escape, s) if _INVISIBLE_RE.search(s) else s


def visible_series(values: pd.Series) -> pd.Series:
    """A text or categorical series -> the same with `visible` applied to its strings (nulls and other values kept,
    index kept); the series itself when nothing needs escaping."""
    if isinstance(values.dtype, pd.CategoricalDtype):
        cats = values.cat.categories
        shown = [visible(c) for c in cats]
        if all(a == b for a, b in zip(shown, cats, strict=True)):
            return values
        if len(set(shown)) == len(shown):
            return values.cat.rename_categories(shown)
        return values.astype(object).map(visible, na_action="ignore")
    search = _INVISIBLE_RE.search
    hits = values.map(lambda v: isinstance(v, str) and search(v) is not None)
    if not hits.any():
        return values
    return values.map(lambda v: visible(v) if isinstance(v, str) else v)


def visible_frame(frame: pd.DataFrame) -> pd.DataFrame:
    """A frame to show -> a copy whose text and categorical columns went through `visible` (others untouched)."""
    out = frame
    for col in frame.columns:
        values = frame[col]
        if values.dtype == object or isinstance(values.dtype, pd.CategoricalDtype | pd.StringDtype):
            col_shown = visible_series(values)
            if col_shown is not values:
                if out is frame:
                    out = frame.copy()
                out[col] = col_shown
    return out
