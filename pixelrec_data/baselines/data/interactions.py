"""Training and evaluation inputs in the paper's formats, built vectorised with numpy.

Layout (see docs/TRAINER.md): internal ids follow the official code's convention, index 0 is PAD,
users are 1..U and items 1..I; `item_num = I + 1` counts the PAD. Items are numbered by their item
number (`i<n>`, ascending) over items.parquet, users by their user number over the validation split,
so ids are stable across runs and align with per-item arrays (covers, features) in item-number order.

A user's training history lives in CSR form: `train_items[train_offsets[u]:train_offsets[u+1]]`,
ordered by (timestamp, item number). Validation and test targets are one item per user.

Sample formats (those of the paper's official code; C = 11 = M + 1):
- windows  [W, 11] int32, left-padded: SEQ windows (drop the oldest n mod 11 training items,
           then non-overlapping windows of 11; a user with n <= 11 gives one window of n).
- prefixes (window index, length): AUGSEQ prefixes of length 2..L, materialised per batch.
- pairs    (user, item) per training row: PAIR models.
Each `*Samples` class (samples.py) turns global sample indices into one numpy batch dict, drawing its negatives
from the generator it is given, so a batch depends only on (seed, epoch, batch number).

tests/loop_reference.py states the same rules as straightforward per-user loops; the tests compare the two.
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from schemas.errors import InputError
from schemas.protocol import MAX_SEQUENCE_LENGTH

M = MAX_SEQUENCE_LENGTH  # MAX_ITEM_LIST_LENGTH: sequence models see at most 10 items
C = M + 1  # window length: 10 (input, next-item target) pairs
_MAX_REDRAWS = 200  # rejection-sampling rounds; only a near-exhausted catalogue ever needs more


@dataclass
class Interactions:
    """One release's interactions remapped to dense ids (0 = PAD)."""

    item_tokens: pa.Array  # [I] str: item_tokens[i - 1] is the release id of internal item i
    user_tokens: pa.Array  # [U] str
    train_offsets: np.ndarray  # [U + 2] int64 CSR offsets; user 0 (PAD) has no rows
    train_items: np.ndarray  # [R] int32, per user in (timestamp, item number) order
    valid_item: np.ndarray  # [U + 1] int32, 0 for PAD
    test_item: np.ndarray  # [U + 1] int32

    @property
    def n_users(self) -> int:
        return len(self.user_tokens)

    @property
    def n_items(self) -> int:
        return len(self.item_tokens)

    @property
    def item_num(self) -> int:  # rows of an item table, PAD included
        return self.n_items + 1

    def train_lengths(self) -> np.ndarray:
        return np.diff(self.train_offsets)

    def train_users(self) -> np.ndarray:
        """User id of every training row (aligned with train_items)."""
        return np.repeat(np.arange(self.n_users + 1, dtype=np.int32), self.train_lengths())

    def item_popularity(self) -> np.ndarray:
        """Interactions per item over the whole release (train + validation + test), [item_num]."""
        counts = np.bincount(self.train_items, minlength=self.item_num)
        counts += np.bincount(self.valid_item[1:], minlength=self.item_num)
        counts += np.bincount(self.test_item[1:], minlength=self.item_num)
        counts[0] = 0
        return counts


# ---------------------------------------------------------------------------------------------
# loading and remapping


class _Vocabulary:
    """Release id tokens -> internal ids 1..n in token order: by the number after `prefix` when
    every token is `<prefix><digits>` (then a row lookup is a parse + binary search), else by the
    string (then a hash lookup)."""

    def __init__(self, tokens: pa.Array, prefix: str):
        self.prefix = prefix
        self.numbers = self.table = None
        if pc.all(pc.match_substring_regex(tokens, rf"^{prefix}[0-9]{{1,18}}$")).as_py():
            numbers = pc.cast(pc.utf8_slice_codeunits(tokens, len(prefix)), pa.int64()).to_numpy()
            order = np.argsort(numbers, kind="stable")
            self.numbers = numbers[order]
            # a dense table number -> id when ids are not too sparse (random reads of a small
            # array beat a binary search per row); else binary search
            top = int(self.numbers[-1]) + 1 if len(numbers) else 0
            if 0 <= self.numbers[0] and top <= 4 * len(numbers) + (1 << 20):
                self.table = np.zeros(top, dtype=np.int32)
                self.table[self.numbers] = np.arange(1, len(numbers) + 1, dtype=np.int32)
        else:
            order = np.asarray(pc.array_sort_indices(tokens))
        self.tokens = tokens.take(pa.array(order))

    def __len__(self):
        return len(self.tokens)

    def _by_number(self, values: pa.Array):
        """1-based ids, or None where a value is not a known token (or not numeric)."""
        if self.numbers is None or not pc.all(pc.starts_with(values, self.prefix)).as_py():
            return None
        try:
            numbers = pc.cast(pc.utf8_slice_codeunits(values, len(self.prefix)), pa.int64()).to_numpy()
        except pa.ArrowInvalid:
            return None
        if self.table is not None:
            inside = (numbers >= 0) & (numbers < len(self.table))
            found = self.table[np.where(inside, numbers, 0)]
            return found if inside.all() and (found > 0).all() else None
        pos = np.minimum(np.searchsorted(self.numbers, numbers), len(self.numbers) - 1)
        return pos + 1 if (self.numbers[pos] == numbers).all() else None

    def ids(self, values, path: Path, what: str) -> np.ndarray:
        """Internal id of every value (int32); an unknown value is a one-line InputError."""
        parts = []
        chunks = values.chunks if isinstance(values, pa.ChunkedArray) else [values]
        for chunk in chunks:
            if pa.types.is_dictionary(chunk.type):
                chunk = chunk.dictionary_decode()
            found = self._by_number(chunk)
            if found is None:
                index = pc.index_in(chunk, value_set=self.tokens)
                if index.null_count:
                    missing = pc.filter(chunk, pc.is_null(index))[0].as_py()
                    raise InputError(f"{path}: {what} '{missing}' is not in the release "
                                     f"({index.null_count} rows)")
                found = index.to_numpy(zero_copy_only=False) + 1
            parts.append(found.astype(np.int32))
        return np.concatenate(parts) if parts else np.zeros(0, dtype=np.int32)


def _time_order(users: np.ndarray, times: np.ndarray, items: np.ndarray, n_items: int) -> np.ndarray:
    """Row order by (user, timestamp, item): one int64 argsort when the composite key fits."""
    if len(times) == 0:
        return np.zeros(0, dtype=np.int64)
    times = times - times.min()
    span = int(times.max()) + 1
    if (int(users.max()) + 1) * span * (n_items + 1) >= 2 ** 62:
        _, times = np.unique(times, return_inverse=True)  # dense ranks shrink the span
        span = int(times.max()) + 1
    if (int(users.max()) + 1) * span * (n_items + 1) >= 2 ** 62:
        return np.lexsort((items, times, users))
    return np.argsort((users.astype(np.int64) * span + times) * (n_items + 1) + items)


def _read(path: Path, columns: list[str]) -> pa.Table:
    if not path.exists():
        raise InputError(f"{path}: no such file (a release needs items.parquet and "
                         "splits/{train,validation,test}.parquet)")
    try:
        table = pq.ParquetFile(path).read(columns=columns, use_threads=False)
    except Exception as exc:  # pyarrow raises several types for a corrupt or foreign file
        raise InputError(f"{path}: cannot read the columns {columns} "
                         f"({str(exc).splitlines()[0]})") from None
    for name in columns:
        if table.column(name).null_count:
            raise InputError(f"{path}: column '{name}' has null values")
    return table


def _read_train(path: Path, item_vocab: _Vocabulary, user_vocab: _Vocabulary):
    """(user ids, item ids, timestamps) of the training split, read batch by batch so that the
    peak memory is the int arrays plus one batch of strings."""
    users, items, times = [], [], []
    try:
        # one thread, small batches, no pre-buffering: ~50 MB of reader memory instead of ~250 MB
        reader = pq.ParquetFile(path, pre_buffer=False, buffer_size=1 << 20)
        batches = reader.iter_batches(batch_size=1 << 17, use_threads=False,
                                      columns=["item_id", "user_id", "timestamp"])
        for batch in batches:
            if any(col.null_count for col in batch.columns):
                raise InputError(f"{path}: null values in item_id, user_id or timestamp")
            users.append(user_vocab.ids(batch.column(1), path, "user"))
            items.append(item_vocab.ids(batch.column(0), path, "item"))
            times.append(batch.column(2).to_numpy().astype(np.int64))
    except (pa.ArrowException, OSError, KeyError) as exc:
        raise InputError(f"{path}: cannot read item_id, user_id, timestamp "
                         f"({str(exc).splitlines()[0]})") from None
    if not users:
        return (np.zeros(0, np.int32),) * 2 + (np.zeros(0, np.int64),)
    return np.concatenate(users), np.concatenate(items), np.concatenate(times)


def _plain(column: pa.ChunkedArray) -> pa.Array:
    """A string column as one plain (non-dictionary) array."""
    column = column.combine_chunks()
    return column.dictionary_decode() if pa.types.is_dictionary(column.type) else column


def load_interactions(release: str | Path) -> Interactions:
    """Read a release folder (items.parquet + splits/) and remap it to dense ids."""
    release = Path(release)
    if not release.is_dir():
        raise InputError(f"{release}: no such release folder")
    items_path = release / "items.parquet"
    split_paths = {s: release / "splits" / f"{s}.parquet" for s in ("train", "validation", "test")}
    items = _plain(_read(items_path, ["item_id"]).column("item_id"))
    if len(items) == 0:
        raise InputError(f"{items_path}: the release has no items")
    if len(pc.unique(items)) != len(items):
        raise InputError(f"{items_path}: duplicate item_id values")
    item_vocab = _Vocabulary(items, "i")
    cols = ["item_id", "user_id", "timestamp"]
    valid, test = (_read(split_paths[s], cols) for s in ("validation", "test"))
    if not split_paths["train"].exists():
        _read(split_paths["train"], cols)  # raises the one-line error

    valid_users = _plain(valid.column("user_id"))
    if len(valid_users) == 0:
        raise InputError(f"{split_paths['validation']}: no rows")
    if len(pc.unique(valid_users)) != len(valid_users):
        raise InputError(f"{split_paths['validation']}: more than one row per user (leave-one-out "
                         "needs exactly one validation row per user)")
    user_vocab = _Vocabulary(valid_users, "u")
    n_users = len(user_vocab)

    def targets(table, path):
        users = user_vocab.ids(table.column("user_id"), path, "user")
        if len(users) != n_users or len(np.unique(users)) != n_users:
            raise InputError(f"{path}: needs exactly one row for each of the {n_users} users")
        out = np.zeros(n_users + 1, dtype=np.int32)
        out[users] = item_vocab.ids(table.column("item_id"), path, "item")
        return out

    valid_item = targets(valid, split_paths["validation"])
    test_item = targets(test, split_paths["test"])
    t_users, t_items, t_time = _read_train(split_paths["train"], item_vocab, user_vocab)
    # (user, timestamp, item number): the split's own order, without the official unstable sort
    order = _time_order(t_users, t_time, t_items, len(item_vocab))
    offsets = np.zeros(n_users + 2, dtype=np.int64)
    np.cumsum(np.bincount(t_users, minlength=n_users + 1), out=offsets[1:])
    return Interactions(
        item_tokens=item_vocab.tokens, user_tokens=user_vocab.tokens,
        train_offsets=offsets, train_items=t_items[order], valid_item=valid_item,
        test_item=test_item)


# ---------------------------------------------------------------------------------------------
# SEQ windows, AUGSEQ prefixes, PAIR rows


def build_windows(data: Interactions) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """SEQ windows: (rows [W, 11] left-padded int32, user [W] int32, length [W] int8).

    A user with n > 11 training items drops the oldest n mod 11 and cuts the rest into n div 11
    non-overlapping windows of 11; a user with 2 <= n <= 11 gives one window of n. (n < 2 gives
    no target, so no window; released users always have n >= 3.)
    """
    lengths = data.train_lengths()[1:]
    users = np.arange(1, data.n_users + 1, dtype=np.int32)
    keep = lengths >= 2
    lengths, users = lengths[keep], users[keep]
    starts = data.train_offsets[1:-1][keep]
    long = lengths > C
    starts = starts + np.where(long, lengths % C, 0)  # drop the oldest n mod 11
    counts = np.where(long, lengths // C, 1)
    win_user = np.repeat(users, counts)
    first = np.repeat(starts, counts)
    # window j of a user starts at start + 11 j
    j = np.arange(len(win_user)) - np.repeat(np.cumsum(counts) - counts, counts)
    win_start = first + C * j
    win_len = np.minimum(np.repeat(starts + lengths - np.where(long, lengths % C, 0), counts)
                         - win_start, C)
    win_end = win_start + win_len
    idx = win_end[:, None] - C + np.arange(C)[None, :]
    rows = np.where(idx >= win_start[:, None],
                    data.train_items[np.maximum(idx, 0)], 0).astype(np.int32)
    return rows, win_user, win_len.astype(np.int8)


def build_prefixes(win_len: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """AUGSEQ prefixes as (window index [P] int32, prefix length [P] int8), lengths 2..L."""
    counts = win_len.astype(np.int64) - 1
    window = np.repeat(np.arange(len(win_len), dtype=np.int32), counts)
    rank = np.arange(len(window)) - np.repeat(np.cumsum(counts) - counts, counts)
    return window, (rank + 2).astype(np.int8)


def prefix_rows(rows: np.ndarray, win_len: np.ndarray, window: np.ndarray,
                length: np.ndarray) -> np.ndarray:
    """Materialise prefixes: [P, 11] left-padded; column 10 is the target, 0..9 its inputs.

    A prefix of length l is its window's first l items moved right by s = L - l columns; the
    columns that move in from the left are the window's own left padding, so no extra masking.
    """
    shift = win_len[window].astype(np.int64) - length
    out = np.zeros((len(window), C), dtype=np.int32)
    for s in np.unique(shift):  # at most 10 distinct shifts: a few large gathers
        sel = np.flatnonzero(shift == s)
        out[sel, s:] = rows[window[sel], :C - s]
    return out


def build_pairs(data: Interactions) -> tuple[np.ndarray, np.ndarray]:
    """PAIR rows: (user [R] int32, item [R] int32), one per training interaction."""
    return data.train_users(), data.train_items


# ---------------------------------------------------------------------------------------------
# evaluation inputs


def eval_targets(data: Interactions, split: str) -> np.ndarray:
    return data.valid_item if split == "validation" else data.test_item


def eval_histories(data: Interactions, users: np.ndarray, split: str) -> np.ndarray:
    """The last 10 history items of `users`, left-padded: [B, 10] int32.

    Validation history = training items; test history = training items + the validation item.
    """
    users = np.asarray(users, dtype=np.int64)
    start, end = data.train_offsets[users], data.train_offsets[users + 1]
    width = M - 1 if split == "test" else M
    idx = end[:, None] - width + np.arange(width)[None, :]
    part = np.where(idx >= start[:, None], data.train_items[np.maximum(idx, 0)], 0)
    if split == "test":
        part = np.concatenate([part, data.valid_item[users][:, None]], axis=1)
    return part.astype(np.int32)


def history_coordinates(data: Interactions, users: np.ndarray, split: str):
    """(row, item) of every item to mask for a batch of users: their full eval history."""
    users = np.asarray(users, dtype=np.int64)
    start, end = data.train_offsets[users], data.train_offsets[users + 1]
    counts = end - start
    row = np.repeat(np.arange(len(users)), counts)
    pos = np.arange(counts.sum()) - np.repeat(np.cumsum(counts) - counts, counts) + np.repeat(start, counts)
    items = data.train_items[pos]
    if split == "test":
        row = np.concatenate([row, np.arange(len(users))])
        items = np.concatenate([items, data.valid_item[users]])
    return row, items.astype(np.int64)


# ---------------------------------------------------------------------------------------------
# negatives: uniform over real items 1..I, redrawn while in the exclusion set


def window_negatives(rng: np.random.Generator, rows: np.ndarray, need: np.ndarray,
                     n_items: int) -> np.ndarray:
    """One negative per `need` slot of each row, never an item of that row (window or prefix)."""
    neg = np.where(need, rng.integers(1, n_items + 1, size=rows.shape), 0)
    for _ in range(_MAX_REDRAWS):
        bad = need & (neg[:, :, None] == rows[:, None, :]).any(-1)
        if not bad.any():
            break
        neg[bad] = rng.integers(1, n_items + 1, size=int(bad.sum()))
    return neg.astype(np.int32)


def history_negatives(rng: np.random.Generator, users: np.ndarray, history_keys: np.ndarray,
                      n_items: int) -> np.ndarray:
    """One negative per user, never in that user's training history.

    `history_keys` is the sorted array user * (n_items + 1) + item over all training rows.
    """
    users = users.astype(np.int64)
    neg = rng.integers(1, n_items + 1, size=len(users))
    for _ in range(_MAX_REDRAWS):
        keys = users * (n_items + 1) + neg
        pos = np.minimum(np.searchsorted(history_keys, keys), len(history_keys) - 1)
        bad = history_keys[pos] == keys
        if not bad.any():
            break
        neg[bad] = rng.integers(1, n_items + 1, size=int(bad.sum()))
    return neg.astype(np.int32)
