"""The escape that keeps a text cell from being read as a formula when a CSV is opened in a
spreadsheet (CSV injection), as a Python function and as the same rule in DuckDB SQL.

A cell is a formula to a spreadsheet when it starts with `=`, `+`, `-` or `@`, also after leading
blanks or invisible characters (spaces, a byte order mark, zero-width characters: spreadsheets
strip them) and also in their compatibility forms (full-width `＝＋－＠`, small `﹦﹢﹣﹫` and the
super- and subscript `⁼⁺₌₊`, which input methods and NFKC turn into the ASCII ones). A tab or a
carriage return at the very start is escaped too. Such a cell gets a leading apostrophe, the
escape spreadsheets themselves show for literal text. NUL bytes are removed from every text cell.
"""
from __future__ import annotations

import re

# every character whose NFKC form is = + - or @ (tests/test_export.py checks the list)
FORMULA_CHARACTERS = ("=+-@"
                      "\uff1d\uff0b\uff0d\uff20"   # full-width ＝ ＋ － ＠
                      "\ufe66\ufe62\ufe63\ufe6b"   # small ﹦ ﹢ ﹣ ﹫
                      "\u207c\u207a\u208c\u208a"   # super- and subscript ⁼ ⁺ ₌ ₊
                      "\ufb29")                     # Hebrew alternative plus ﬩
# escaped at the very start whatever follows
CONTROL_STARTS = "\t\r"
# skipped before the formula character: every whitespace character (str.isspace) and the
# invisible format characters a cell may start with (byte order mark, zero-width, direction marks)
IGNORED_PREFIX = ("\t\n\x0b\x0c\r\x1c\x1d\x1e\x1f \x85\xa0\u1680"
                  + "".join(chr(c) for c in range(0x2000, 0x200b))   # en quad .. hair space
                  + "\u2028\u2029\u202f\u205f\u3000"
                  + "\xad\u061c\u180e"
                  + "".join(chr(c) for c in range(0x200b, 0x2010))   # zero-width, LRM, RLM
                  + "".join(chr(c) for c in range(0x202a, 0x202f))   # bidi embeddings
                  + "".join(chr(c) for c in range(0x2060, 0x2065))   # word joiner, invisibles
                  + "".join(chr(c) for c in range(0x2066, 0x2070))   # bidi isolates
                  + "\ufeff")


def _pattern(escape) -> str:
    ignored = "".join(map(escape, IGNORED_PREFIX))
    starts = "".join(map(escape, FORMULA_CHARACTERS))
    controls = "".join(map(escape, CONTROL_STARTS))
    return f"^(?:[{controls}]|[{ignored}]*[{starts}])"


# one rule, spelled for Python's re (\uXXXX) and for DuckDB's RE2 (\x{XXXX})
_FORMULA = re.compile(_pattern(lambda c: f"\\u{ord(c):04x}"))
FORMULA_RE2 = _pattern(lambda c: f"\\x{{{ord(c):x}}}")


def looks_like_formula(value: str) -> bool:
    return _FORMULA.match(value) is not None


def spreadsheet_safe(value: str | None) -> str | None:
    """The escape `pixelrec-csv` applies to a text cell (`safe_sql` is the same in SQL)."""
    if value is None:
        return None
    value = value.replace("\x00", "")
    return "'" + value if looks_like_formula(value) else value


def safe_sql(column: str) -> str:
    """`spreadsheet_safe` of a text column, as a DuckDB select expression named `column`."""
    clean = f"replace({column}, chr(0), '')"
    return (f"CASE WHEN regexp_matches({clean}, '{FORMULA_RE2}') THEN '''' || {clean} "
            f"ELSE {clean} END AS {column}")
