"""What a configured CQL statement may be: a read only one SELECT, a write only INSERT,
UPDATE or a BATCH of those.

The exporter runs these statements every interval with its own role, so a config must not
be able to make it TRUNCATE, DROP or GRANT. A small tokenizer is enough: it skips string
literals, quoted names and comments, so a keyword inside them counts for nothing, and the
words that could do harm are reserved in CQL (they cannot be unquoted names).
"""

from __future__ import annotations

import re

_TOKEN = re.compile(
    r"(?P<skip>'(?:[^']|'')*'|\$\$.*?\$\$|\"(?:[^\"]|\"\")*\"|--[^\n]*|//[^\n]*|/\*.*?\*/|\s+)"
    r"|(?P<word>[A-Za-z_][A-Za-z0-9_]*)"
    r"|(?P<open>'|\$\$|\"|/\*)"
    r"|(?P<other>.)",
    re.DOTALL,
)

MAX_CQL_LENGTH = 10_000
"""Characters in one configured statement."""
WRITE_VERBS = frozenset({"INSERT", "UPDATE"})
FORBIDDEN_IN_WRITES = frozenset(
    {"DELETE", "TRUNCATE", "DROP", "CREATE", "ALTER", "GRANT", "REVOKE", "SELECT"}
)
"""Reserved words, so never names: a write that holds one of them does more than write."""


def tokens(cql: str) -> list[str]:
    """Words (upper-cased) and punctuation, without literals, quoted names and comments."""
    found: list[str] = []
    for match in _TOKEN.finditer(cql):
        if match.group("open"):
            raise ValueError(f"unterminated {match.group('open')} in the statement")
        if match.group("word"):
            found.append(match.group("word").upper())
        elif match.group("other"):
            found.append(match.group("other"))
    return found


def _one_statement(found: list[str]) -> list[str]:
    """The tokens without a trailing `;`; refuses a `;` followed by anything."""
    while found and found[-1] == ";":
        found = found[:-1]
    if ";" in found:
        raise ValueError("must be a single statement: nothing may follow ';'")
    return found


def check_select(cql: str) -> None:
    """A single SELECT, or ValueError naming what it is instead."""
    found = _one_statement(tokens(cql))
    if not found:
        raise ValueError("must be a CQL statement, got an empty string")
    if found[0] != "SELECT":
        raise ValueError(f"must be a SELECT statement, got {found[0][:20]!r}")


def check_write(cql: str) -> None:
    """A single INSERT or UPDATE, or a BATCH of them; ValueError otherwise."""
    found = tokens(cql)
    if not found:
        raise ValueError("must be a CQL statement, got an empty string")
    first = found[0]
    if first == "SELECT":
        raise ValueError("must write (INSERT, UPDATE or BATCH), got a SELECT")
    if first not in WRITE_VERBS | {"BEGIN"}:
        raise ValueError(f"must be INSERT, UPDATE or a BATCH of them, got {first[:20]!r}")
    harmful = sorted(FORBIDDEN_IN_WRITES.intersection(found))
    if harmful:
        raise ValueError(f"a write may only INSERT or UPDATE, but this one holds {harmful[0]}")
    if first != "BEGIN":
        _one_statement(found)
        return
    body = found
    while body and body[-1] == ";":
        body = body[:-1]
    if body[-2:] != ["APPLY", "BATCH"] or "BATCH" not in body[1:3]:
        raise ValueError("a BATCH is written BEGIN BATCH ... APPLY BATCH")
    inner = body[body.index("BATCH") + 1 : -2]
    starts = [0] + [i + 1 for i, token in enumerate(inner) if token == ";"]
    for start in starts:
        if start < len(inner) and inner[start] not in WRITE_VERBS | {"USING"}:
            raise ValueError(
                f"a BATCH may hold only INSERT and UPDATE, got {inner[start][:20]!r}"
            )
    if "BEGIN" in inner or "APPLY" in inner:
        raise ValueError("a BATCH holds statements, not another BATCH")


_BARE = re.compile(r"[a-z_][a-z0-9_]*")


def quote_name(name: str) -> str:
    """A name as CQL must write it: bare when lower-case, else double-quoted."""
    return name if _BARE.fullmatch(name) else '"' + name.replace('"', '""') + '"'


def quote_string(text: str) -> str:
    """`text` as a CQL string literal: single-quoted, quotes doubled."""
    return "'" + text.replace("'", "''") + "'"
