"""Line numbers for a TOML text: ``tomllib`` reports no positions for valid documents, so
errors that must name a file's line (matrix files, workflow settings) recover it here with a
small scanner over the source."""

from __future__ import annotations

import bisect
import contextlib
import re
import tomllib
from collections.abc import Iterator

KeyPath = tuple[str | int, ...]


def format_key(path: KeyPath) -> str:
    """``("probes", 2)`` → ``probes[2]``; ``("gates", "cf_loss_max")`` → ``gates.cf_loss_max``."""
    text = ""
    for part in path:
        if isinstance(part, int):
            text += f"[{part}]"
        else:
            text += f".{part}" if text else part
    return text


class _ScanError(Exception):
    """The scanner met text it does not understand; the index keeps what it found so far."""


_BARE_KEY = re.compile(r"[A-Za-z0-9_-]+")
_SCALAR_END = set(",]}#\r\n")


class SourceIndex:
    """Line numbers (1-based) of the keys, tables and array elements of a TOML text.

    It understands what our matrix files use — tables, arrays of tables, dotted and quoted keys,
    inline tables, single- and multi-line arrays and strings, comments — and stops quietly at
    anything else, keeping the lines found before it.
    """

    def __init__(self, text: str) -> None:
        self.text = text
        self.lines: dict[KeyPath, int] = {}
        self._pos = 0
        self._newlines = [i for i, char in enumerate(text) if char == "\n"]
        with contextlib.suppress(_ScanError, IndexError):
            self._document()

    def line_of(self, path: KeyPath) -> int | None:
        """The line of ``path``, or of its nearest recorded parent (a missing key's table)."""
        for length in range(len(path), 0, -1):
            if path[:length] in self.lines:
                return self.lines[path[:length]]
        return None

    def last_key_before(self, line: int) -> KeyPath | None:
        """The last key recorded at or before ``line`` (what a syntax error was probably in)."""
        return next((path for path, at in reversed(self.lines.items()) if at <= line), None)

    # The scanner proper: a recursive descent over the text, recording as it goes.

    def _record(self, path: KeyPath, pos: int) -> None:
        line = bisect.bisect_left(self._newlines, pos) + 1
        for length in range(1, len(path) + 1):
            self.lines.setdefault(path[:length], line)

    def _peek(self, count: int = 1) -> str:
        return self.text[self._pos : self._pos + count]

    def _skip(self, newlines: bool) -> None:
        """Skip spaces and comments, and line breaks too when ``newlines``."""
        while self._pos < len(self.text):
            char = self.text[self._pos]
            if char in " \t" or (newlines and char in "\r\n"):
                self._pos += 1
            elif char == "#":
                end = self.text.find("\n", self._pos)
                self._pos = len(self.text) if end < 0 else end
            else:
                return

    def _expect(self, token: str) -> None:
        self._skip(newlines=False)
        if self._peek(len(token)) != token:
            raise _ScanError(f"expected {token!r}")
        self._pos += len(token)

    def _document(self) -> None:
        table: KeyPath = ()
        array_tables: dict[KeyPath, int] = {}
        while True:
            self._skip(newlines=True)
            if self._pos >= len(self.text):
                return
            if self._peek() == "[":
                start = self._pos
                closer = "]]" if self._peek(2) == "[[" else "]"
                self._pos += len(closer)
                table = self._key()
                self._expect(closer)
                if closer == "]]":  # an array of tables: each header opens the next element
                    array_tables[table] = array_tables.get(table, -1) + 1
                    table = (*table, array_tables[table])
                self._record(table, start)
            else:
                self._key_value(table)

    def _key_value(self, table: KeyPath) -> None:
        start = self._pos
        path = (*table, *self._key())
        self._expect("=")
        self._record(path, start)
        self._value(path)

    def _key(self) -> KeyPath:
        parts: list[str | int] = []
        while True:
            self._skip(newlines=False)
            if self._peek() in ('"', "'"):
                start = self._pos
                self._string()
                parts.append(tomllib.loads("k = " + self.text[start : self._pos])["k"])
            else:
                match = _BARE_KEY.match(self.text, self._pos)
                if not match:
                    raise _ScanError("expected a key")
                parts.append(match.group())
                self._pos = match.end()
            self._skip(newlines=False)
            if self._peek() != ".":
                return tuple(parts)
            self._pos += 1

    def _value(self, path: KeyPath) -> None:
        self._skip(newlines=False)
        char = self._peek()
        if char == "[":
            for index, _ in enumerate(self._items("]")):
                self._record((*path, index), self._pos)
                self._value((*path, index))
        elif char == "{":
            for _ in self._items("}"):
                self._key_value(path)
        elif char in ('"', "'"):
            self._string()
        else:
            start = self._pos
            while self._pos < len(self.text) and self.text[self._pos] not in _SCALAR_END:
                self._pos += 1
            if self._pos == start:
                raise _ScanError("expected a value")

    def _items(self, closer: str) -> Iterator[None]:
        """Step through a bracketed, comma-separated list, yielding at the start of each item."""
        self._pos += 1
        while True:
            self._skip(newlines=True)
            if self._peek() == closer:
                self._pos += 1
                return
            yield
            self._skip(newlines=True)
            if self._peek() == ",":
                self._pos += 1
            elif self._peek() != closer:
                raise _ScanError(f"expected ',' or {closer!r}")

    def _string(self) -> None:
        quote = self._peek()
        delimiter = quote * 3 if self._peek(3) == quote * 3 else quote
        self._pos += len(delimiter)
        while self._pos < len(self.text):
            if quote == '"' and self.text[self._pos] == "\\":
                self._pos += 2
            elif self.text.startswith(delimiter, self._pos):
                self._pos += len(delimiter)
                # A multi-line string may end with up to two extra quotes before its delimiter.
                while len(delimiter) == 3 and self._peek() == quote:
                    self._pos += 1
                return
            elif len(delimiter) == 1 and self.text[self._pos] == "\n":
                raise _ScanError("unterminated string")
            else:
                self._pos += 1
        raise _ScanError("unterminated string")
