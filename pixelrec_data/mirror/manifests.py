"""A release's manifest read as a stream: its check takes time linear in its entries and bounded
memory, whatever a mirror serves.

A manifest lists every file of a release, covers included. `read_manifest` walks its JSON text
with ijson (a streaming parser: one entry in memory at a time) and checks each entry as it comes:
a safe relative path (`check_relpath`), then the entry rules of schemas.manifest (`entry_problem`
applies them; a generic JSON Schema validator costs ~40 us an entry, minutes for two million).
The files are kept in a `FileTable`, about 90 bytes a file where Python dicts take ~600. The rest
of the manifest (name, build, counts: "the head") must be small (MAX_HEAD_VALUES) and is
validated by jsonschema as a whole. The entries are capped (`max_files`: what the mirror's index
declares, at most MAX_MANIFEST_FILES) and the whole check has a deadline.
"""
from __future__ import annotations

import io
import re
import time
from array import array
from typing import BinaryIO, NamedTuple

import ijson
import jsonschema
import numpy as np

from schemas.errors import InputError
from schemas.manifest import MANIFEST_SCHEMA

MANIFEST = "manifest.json"
# The full PixelRec has about 408,000 items, so a release of covers as files lists about as many
# entries; two million is room for five times that (and fits MAX_MANIFEST_BYTES).
MAX_MANIFEST_FILES = 2_000_000
MAX_HEAD_VALUES = 10_000  # JSON values outside `files` (name, build, counts...)
READ_BLOCK = 1 << 16
DEADLINE_EVERY = 4096  # entries between two looks at the clock
ENTRY_RULES = MANIFEST_SCHEMA["properties"]["files"]["items"]
UNSAFE_PARTS = frozenset(("", ".", ".."))


class FileEntry(NamedTuple):
    path: str
    size: int
    sha256: str


class FileTable:
    """The files a manifest lists, packed: paths as UTF-8 in one buffer, sizes and digests in
    arrays. After `seal`, `index_of` finds a path by its hash (a sorted numpy array)."""

    def __init__(self):
        self._text = bytearray()
        self._ends = array("Q")
        self._sizes = array("q")
        self._digests = bytearray()
        self._hashes = array("q")
        self._sorted: np.ndarray | None = None
        self._order: np.ndarray | None = None

    def add(self, path: str, size: int, sha256: str) -> None:
        self._text += path.encode()
        self._ends.append(len(self._text))
        self._sizes.append(size)
        self._digests += bytes.fromhex(sha256)
        self._hashes.append(hash(path))

    def __len__(self) -> int:
        return len(self._ends)

    def path(self, number: int) -> str:
        start = self._ends[number - 1] if number else 0
        return self._text[start:self._ends[number]].decode()

    def __getitem__(self, number: int) -> FileEntry:
        digest = self._digests[32 * number:32 * number + 32].hex()
        return FileEntry(self.path(number), self._sizes[number], digest)

    def __iter__(self):
        return (self[number] for number in range(len(self)))

    @property
    def total_bytes(self) -> int:
        return sum(self._sizes)

    def seal(self, where: str) -> None:
        """Build the lookup by path; a path listed twice, or the manifest listing itself, is
        refused. Sorting the hashes costs n log n in C; Python only looks at equal hashes."""
        hashes = np.frombuffer(self._hashes, dtype=np.int64)
        self._order = np.argsort(hashes, kind="stable").astype(np.int32)
        self._sorted = hashes[self._order]
        self._hashes = array("q")
        # a path listed twice has a neighbour of equal hash (as has, rarely, a collision)
        for first in np.flatnonzero(self._sorted[1:] == self._sorted[:-1]):
            path = self.path(int(self._order[first]))
            if len(self._numbers_of(path)) > 1:
                raise InputError(f"{where}: a file is listed twice ({path!r:.80})")
        if self.index_of(MANIFEST) is not None:
            raise InputError(f"{where}: manifest.json lists itself")

    def index_of(self, path: str) -> int | None:
        """The number of the entry of `path`, or None when the manifest does not list it."""
        numbers = self._numbers_of(path)
        return numbers[0] if numbers else None

    def _numbers_of(self, path: str) -> list[int]:
        key = hash(path)
        low = int(np.searchsorted(self._sorted, key, "left"))
        high = int(np.searchsorted(self._sorted, key, "right"))
        return [int(n) for n in self._order[low:high] if self.path(int(n)) == path]


class Manifest(NamedTuple):
    head: dict  # everything but the files: name, schema_version, created_by, build, counts
    files: FileTable

    @property
    def name(self) -> str:
        return self.head["name"]


def check_relpath(path: object, where: str) -> str:
    """`path` if it is a safe relative POSIX path (no '..', not absolute, no drive), else error."""
    parts = path.split("/") if isinstance(path, str) else []
    if (not parts or path.startswith("/") or "\\" in path or "\x00" in path
            or not UNSAFE_PARTS.isdisjoint(parts) or ":" in parts[0] or not _encodable(path)):
        raise InputError(f"{where}: unsafe file path {path!r:.80} (must be relative, without '..')")
    return path


def _encodable(text: str) -> bool:
    try:
        text.encode()
    except UnicodeEncodeError:  # a lone surrogate: no file system name
        return False
    return True


def read_manifest(handle: BinaryIO, where: str, max_files: int = MAX_MANIFEST_FILES,
                  deadline: float | None = None, cap_reason: str = "") -> Manifest:
    """Parse and check the manifest in `handle` (JSON Schema, safe and distinct file paths),
    streaming: at most `max_files` entries (cap_reason says where that number comes from), and
    done before time.monotonic() reaches `deadline`."""
    reader = _Reader(where, max_files, deadline, cap_reason)
    try:
        head = reader.read(ijson.basic_parse(handle, buf_size=READ_BLOCK, use_float=True))
    except (ijson.JSONError, UnicodeDecodeError, OverflowError) as exc:
        # a lone surrogate in a string; a size past 2^63 (the C parser says "integer overflow")
        raise InputError(f"{where}: not valid JSON ({_first_line(exc)})") from None
    try:
        jsonschema.validate(head, MANIFEST_SCHEMA)
    except jsonschema.ValidationError as exc:
        at = "/".join(str(p) for p in exc.absolute_path) or "(top)"
        raise InputError(f"{where}: not a valid manifest at {at}: {exc.message:.120}") from None
    head.pop("files", None)
    reader.files.seal(where)
    reader.check_time("checking its paths")
    return Manifest(head, reader.files)


def parse_manifest(data: bytes, where: str) -> Manifest:
    """`read_manifest` of manifest bytes already in memory."""
    return read_manifest(io.BytesIO(data), where)


def check_deadline(deadline: float | None, where: str, doing: str) -> None:
    if deadline is not None and time.monotonic() > deadline:
        raise InputError(f"{where}: the check of the manifest ran past its deadline ({doing}); "
                         f"refused")


class _Reader:
    """One pass over the parser's events: the head built as an object, the entries checked and
    packed one by one."""

    def __init__(self, where: str, max_files: int, deadline: float | None, cap_reason: str):
        self.where, self.max_files, self.deadline = where, max_files, deadline
        self.cap_reason = cap_reason or "the most this pixelrec reads"
        self.files = FileTable()
        self.head_values = 0

    def check_time(self, doing: str) -> None:
        check_deadline(self.deadline, self.where, doing)

    def read(self, events) -> dict:
        if next(events, (None, None))[0] != "start_map":
            raise InputError(f"{self.where}: not a valid manifest at (top): not a JSON object")
        head: dict = {}
        for event, key in events:
            if event == "end_map":
                break
            if key in head:  # a JSON parser would keep one of the two silently
                raise InputError(f"{self.where}: the key {key!r:.40} appears twice")
            if key == "files":
                if next(events)[0] != "start_array":
                    raise InputError(f"{self.where}: not a valid manifest at files: not an array")
                self._read_entries(events)
                head[key] = []
            else:
                head[key] = self._value(events)
        for _ in events:  # the parser raises on anything after the object
            pass
        return head

    def _value(self, events):
        """One JSON value of the head, built from its events; at most MAX_HEAD_VALUES in all."""
        builder = ijson.ObjectBuilder()
        depth = 0
        for event, value in events:
            self.head_values += 1
            if self.head_values > MAX_HEAD_VALUES:
                raise InputError(f"{self.where}: over {MAX_HEAD_VALUES:,} values outside 'files' "
                                 f"(name, build, counts...); refused")
            builder.event(event, value)
            depth += event in ("start_map", "start_array")
            depth -= event in ("end_map", "end_array")
            if depth == 0:
                return builder.value
        raise InputError(f"{self.where}: not valid JSON (premature end)")

    def _read_entries(self, events) -> None:
        for number, (event, _) in enumerate(events):
            if event == "end_array":
                return
            if number >= self.max_files:
                raise InputError(f"{self.where}: lists more than {self.max_files:,} files "
                                 f"({self.cap_reason}); refused")
            if number % DEADLINE_EVERY == 0:
                self.check_time(f"{number:,} entries read")
            if event != "start_map":
                raise InputError(f"{self.where}: not a valid manifest at files/{number}: not an "
                                 f"object")
            self._take(self._entry(events, number), number)

    def _entry(self, events, number: int) -> dict:
        entry = {}
        for event, key in events:
            if event == "end_map":
                return entry
            event, value = next(events)
            if event in ("start_map", "start_array"):  # no value of an entry is a container
                raise InputError(f"{self.where}: not a valid manifest at files/{number}/"
                                 f"{key:.40}: not a string, a number or null")
            entry[key] = value
        return entry

    def _take(self, entry: dict, number: int) -> None:
        # paths first: an unsafe path gets its own clear message rather than a schema error
        check_relpath(entry.get("path"), self.where)
        problem = entry_problem(entry)
        if problem is not None:
            raise InputError(f"{self.where}: not a valid manifest at files/{number}: {problem}")
        self.files.add(entry["path"], entry["bytes"], entry["sha256"])


# --- the entry rules of MANIFEST_SCHEMA, applied without a generic validator -------------------
TYPES = {"string": str, "integer": int, "null": type(None)}  # exact types: a bool is no integer
KNOWN_RULES = {"type", "pattern", "not", "minimum"}


class _Rule(NamedTuple):
    types: tuple
    names: str
    pattern: re.Pattern | None
    not_pattern: re.Pattern | None
    minimum: int | None


def _compile(rules: dict) -> _Rule:
    """One property's rules; a keyword not applied here is an error when this module loads."""
    unknown = set(rules) - KNOWN_RULES
    if unknown or set(rules.get("not", {})) - {"pattern"}:
        raise RuntimeError(f"manifest entry rule {sorted(unknown)} is not applied here")
    types = rules["type"] if isinstance(rules["type"], list) else [rules["type"]]
    return _Rule(tuple(TYPES[t] for t in types), " or ".join(types),
                 re.compile(rules["pattern"]) if "pattern" in rules else None,
                 re.compile(rules["not"]["pattern"]) if "not" in rules else None,
                 rules.get("minimum"))


if ENTRY_RULES.get("additionalProperties") is not False or ENTRY_RULES["type"] != "object":
    raise RuntimeError("manifest entries are objects without additional properties here")
PROPERTIES = {key: _compile(rules) for key, rules in ENTRY_RULES["properties"].items()}
REQUIRED = frozenset(ENTRY_RULES["required"])


def entry_problem(entry: dict) -> str | None:
    """What breaks the schema's rules for one entry of `files`, or None."""
    if not REQUIRED <= entry.keys():
        return f"{sorted(REQUIRED - entry.keys())[0]!r} is a required property"
    for key, value in entry.items():
        rule = PROPERTIES.get(key)
        if rule is None:
            return f"additional property {key!r:.40} is not allowed"
        if type(value) not in rule.types:
            return f"{key}: expected {rule.names}"
        if type(value) is str:
            if rule.pattern is not None and not rule.pattern.search(value):
                return f"{key}: {value!r:.80} does not match {rule.pattern.pattern!r}"
            if rule.not_pattern is not None and rule.not_pattern.search(value):
                return f"{key}: {value!r:.80} matches {rule.not_pattern.pattern!r}"
        elif rule.minimum is not None and value is not None and value < rule.minimum:
            return f"{key}: {value} is less than the minimum of {rule.minimum}"
    return None


def _first_line(exc: Exception) -> str:
    """The parser's message without the quoted input it adds on the next lines."""
    text = str(exc).removeprefix("b'").removeprefix('b"')
    return text.split("\\n")[0].splitlines()[0][:100] if text.strip() else type(exc).__name__
