"""GeoJSON FeatureCollections, read one feature at a time (pure: text chunks in).

A households file can be large; :func:`iter_features` decodes the top-level object key by
key and yields the members of ``features`` as they are decoded, so memory stays at one
feature plus one read chunk whatever the file size and the order of its keys.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Iterator
from typing import Any

from incident.geo.errors import FileFormatError

_WS = " \t\r\n"


class _Buffer:
    def __init__(self, chunks: Iterable[str]) -> None:
        self._chunks = iter(chunks)
        self.text = ""
        self.pos = 0
        self.eof = False
        self._decoder = json.JSONDecoder()

    def more(self) -> bool:
        if self.eof:
            return False
        for chunk in self._chunks:
            if chunk:
                # Drop what is consumed so a long stream does not grow the buffer.
                self.text = self.text[self.pos :] + chunk
                self.pos = 0
                return True
        self.eof = True
        return False

    def peek(self) -> str:
        """The next non-blank character, or '' at the end of the input."""
        while True:
            while self.pos < len(self.text) and self.text[self.pos] in _WS:
                self.pos += 1
            if self.pos < len(self.text):
                return self.text[self.pos]
            if not self.more():
                return ""

    def expect(self, char: str, what: str) -> None:
        if self.peek() != char:
            found = self.peek() or "end of file"
            raise FileFormatError(f"GeoJSON: expected {what}, found {found!r}")
        self.pos += 1

    def value(self) -> Any:
        self.peek()
        while True:
            try:
                value, end = self._decoder.raw_decode(self.text, self.pos)
            except json.JSONDecodeError as err:
                if self.more():
                    continue
                raise FileFormatError(f"GeoJSON: not valid JSON ({err.msg})") from None
            # A number cut at the chunk edge decodes as a shorter number: make sure it ended.
            if end == len(self.text) and self.more():
                continue
            self.pos = end
            return value


def iter_features(chunks: Iterable[str]) -> Iterator[dict[str, Any]]:
    """Yield each feature of a GeoJSON FeatureCollection given as text chunks."""
    buf = _Buffer(chunks)
    buf.expect("{", "a GeoJSON object")
    kind: object = None
    saw_features = False
    if buf.peek() == "}":
        raise FileFormatError("GeoJSON: the object is empty, expected a FeatureCollection")
    while True:
        key = buf.value()
        if not isinstance(key, str):
            raise FileFormatError("GeoJSON: object keys must be strings")
        buf.expect(":", "':'")
        if key == "features":
            saw_features = True
            buf.expect("[", "the features array")
            if buf.peek() == "]":
                buf.pos += 1
            else:
                while True:
                    feature = buf.value()
                    if not isinstance(feature, dict):
                        raise FileFormatError("GeoJSON: each member of features must be an object")
                    yield feature
                    if buf.peek() == ",":
                        buf.pos += 1
                        continue
                    buf.expect("]", "',' or ']' in features")
                    break
        else:
            value = buf.value()
            if key == "type":
                kind = value
                if kind != "FeatureCollection":
                    raise FileFormatError(f"GeoJSON: type must be FeatureCollection, got {kind!r}")
        if buf.peek() == ",":
            buf.pos += 1
            continue
        buf.expect("}", "',' or '}'")
        break
    if kind != "FeatureCollection":
        raise FileFormatError(f"GeoJSON: type must be FeatureCollection, got {kind!r}")
    if not saw_features:
        raise FileFormatError("GeoJSON: the FeatureCollection has no features member")
