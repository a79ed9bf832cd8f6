"""Training inputs: vectorised windows / prefixes / pairs / eval inputs equal the loop reference."""
import numpy as np
import pyarrow as pa
import pytest

from pixelrec_data.baselines.data import interactions as D
import loop_reference as R
from pixelrec_data.baselines.data import samples as S
import toy
from schemas.errors import InputError
from schemas.io import write_table
from trainer_helpers import from_sequences


def random_interactions(seed=0, n_users=300, n_items=50):
    rng = np.random.default_rng(seed)
    # lengths cover the edge cases: 3 (n=1 train), 4, 13 (= 11 + 2), 14, 24, 35, 60
    lengths = rng.choice([3, 4, 5, 12, 13, 14, 24, 25, 35, 60], size=n_users)
    return from_sequences([list(rng.integers(1, n_items + 1, size=n)) for n in lengths], n_items)


def test_windows_equal_loop_reference():
    data = random_interactions()
    rows, users, lengths = D.build_windows(data)
    expected = R.reference_windows(data)
    assert len(rows) == len(expected)
    for row, user, length, (ref_user, ref_window) in zip(rows, users, lengths, expected):
        assert user == ref_user and length == len(ref_window)
        assert list(row) == [0] * (D.C - len(ref_window)) + list(ref_window)
    assert (lengths <= D.C).all() and (lengths >= 2).all()


def test_window_rule_drops_oldest_remainder():
    data = from_sequences([list(range(1, 28))], 30)  # 25 training items: drop 3, two windows
    rows, _, lengths = D.build_windows(data)
    assert lengths.tolist() == [11, 11]
    assert rows[0].tolist() == list(range(4, 15)) and rows[1].tolist() == list(range(15, 26))


def test_prefixes_equal_loop_reference():
    data = random_interactions(seed=1)
    rows, _, lengths = D.build_windows(data)
    window, length = D.build_prefixes(lengths)
    got = D.prefix_rows(rows, lengths, window, length)
    expected = R.reference_prefixes(R.reference_windows(data))
    assert len(got) == len(expected)
    for row, ref in zip(got, expected):
        assert row.tolist() == [0] * (D.C - len(ref)) + list(ref)


def test_eval_histories_and_masks_equal_reference():
    data = random_interactions(seed=2)
    users = np.arange(1, data.n_users + 1)
    for split in ("validation", "test"):
        got = D.eval_histories(data, users, split)
        for user, row in zip(users, got):
            assert row.tolist() == R.reference_eval_history(data, user, split)
        rows, items = D.history_coordinates(data, users[:5], split)
        for r in range(5):
            u = users[r]
            full = list(data.train_items[data.train_offsets[u]:data.train_offsets[u + 1]])
            if split == "test":
                full.append(data.valid_item[u])
            assert sorted(items[rows == r].tolist()) == sorted(int(x) for x in full)


def test_negatives_respect_exclusion_sets():
    data = random_interactions(seed=3, n_items=30)
    rng = np.random.default_rng(0)
    seq = S.SeqSamples(data)
    batch = seq.batch(np.arange(len(seq)), rng)
    pos, neg = batch["pos"], batch["neg"]
    assert ((neg[:, 1:] != 0) == (pos[:, :-1] != 0)).all() and (neg[:, 0] == 0).all()
    for p, n in zip(pos, neg):
        assert not set(n[n != 0].tolist()) & set(p.tolist())
    pairs = S.PairSamples(data)
    batch = pairs.batch(np.arange(len(pairs)), rng)
    for u, n in zip(batch["user"], batch["neg"]):
        history = data.train_items[data.train_offsets[u]:data.train_offsets[u + 1]]
        assert 1 <= n <= data.n_items and n not in history
    prefix = S.PrefixSamples(data)
    batch = prefix.batch(np.arange(len(prefix)), rng)
    assert len(prefix) == sum(len(w) - 1 for _, w in R.reference_windows(data))
    assert not (batch["neg"][:, None] == batch["seq"]).any()


def test_bert_and_position_formats():
    data = random_interactions(seed=4)
    bert = S.BertSamples(data, mask_ratio=0.6).batch(np.arange(50), np.random.default_rng(0))
    assert (bert["input"][bert["flag"]] == data.item_num).all()
    assert ((bert["neg"] != 0) == bert["flag"]).all()
    pos = S.PositionSamples(data)
    batch = pos.batch(np.arange(3), np.random.default_rng(0))
    windows = R.reference_windows(data)[:3]
    expected = [(w[:j] + w[j + 1:], w[j]) for _, w in windows for j in range(len(w))]
    assert len(batch["pos"]) == len(expected)
    for ctx, target, (ref_ctx, ref_target) in zip(batch["context"], batch["pos"], expected):
        assert target == ref_target and ctx.tolist() == [0] * (10 - len(ref_ctx)) + ref_ctx


def test_load_release_remaps_by_number_and_orders_ties(tmp_path):
    toy.write_release(tmp_path, [[5, 3, 9, 1, 2], [0, 10, 4, 7, 6]], n_items=11)
    data = D.load_interactions(tmp_path)
    assert data.n_users == 2 and data.n_items == 11
    # internal id = 1 + rank of the item number; 'i10' sorts after 'i9'
    assert data.train_items.tolist() == [6, 4, 10, 1, 11, 5]
    assert data.valid_item.tolist() == [0, 2, 8] and data.test_item.tolist() == [0, 3, 7]
    # equal timestamps inside a user: ordered by item number
    table = pa.table({"item_id": ["i3", "i1", "i2"], "user_id": ["u0"] * 3, "timestamp": [5, 5, 4]})
    write_table(table, tmp_path / "splits" / "train.parquet", "split")
    train_only = D.load_interactions(tmp_path)
    assert train_only.train_items.tolist() == [3, 2, 4]


@pytest.mark.parametrize("damage", ["no_items", "no_split", "unknown_item", "two_valid_rows"])
def test_bad_release_is_one_line_input_error(tmp_path, damage):
    toy.write_release(tmp_path, [[1, 2, 3, 4], [2, 3, 4, 5]], n_items=6)
    if damage == "no_items":
        (tmp_path / "items.parquet").unlink()
    elif damage == "no_split":
        (tmp_path / "splits" / "test.parquet").unlink()
    elif damage == "unknown_item":
        table = pa.table({"item_id": ["i99"], "user_id": ["u0"], "timestamp": [1]})
        write_table(table, tmp_path / "splits" / "train.parquet", "split")
    else:
        table = pa.table({"item_id": ["i1", "i2"], "user_id": ["u0", "u0"], "timestamp": [1, 2]})
        write_table(table, tmp_path / "splits" / "validation.parquet", "split")
    with pytest.raises(InputError) as err:
        D.load_interactions(tmp_path)
    assert "\n" not in str(err.value)


def test_non_numeric_user_tokens_fall_back_to_string_order(tmp_path):
    toy.write_release(tmp_path, [[1, 2, 3, 4], [2, 3, 4, 5]], n_items=6)
    for split, rows in (("train", [("i1", "bob", 1), ("i2", "bob", 2), ("i2", "al", 1)]),
                        ("validation", [("i3", "bob", 3), ("i3", "al", 2)]),
                        ("test", [("i4", "bob", 4), ("i4", "al", 3)])):
        table = pa.table({"item_id": [r[0] for r in rows], "user_id": [r[1] for r in rows],
                          "timestamp": [r[2] for r in rows]})
        write_table(table, tmp_path / "splits" / f"{split}.parquet", "split")
    data = D.load_interactions(tmp_path)
    assert data.user_tokens.to_pylist() == ["al", "bob"]
    assert data.train_offsets.tolist() == [0, 0, 1, 3] and data.train_items.tolist() == [3, 2, 3]


def test_sparse_item_numbers_use_binary_search_lookup(tmp_path):
    from toy import _items_table
    items = _items_table(3).set_column(0, "item_id", pa.array(["i7000000", "i3", "i12"]))
    write_table(items, tmp_path / "items.parquet", "items")
    for split, item in (("train", ["i7000000", "i3"]), ("validation", ["i12"]), ("test", ["i3"])):
        table = pa.table({"item_id": item, "user_id": ["u5"] * len(item),
                          "timestamp": list(range(len(item)))})
        write_table(table, tmp_path / "splits" / f"{split}.parquet", "split")
    data = D.load_interactions(tmp_path)
    assert data.item_tokens.to_pylist() == ["i3", "i12", "i7000000"]
    assert data.train_items.tolist() == [3, 1] and data.valid_item.tolist() == [0, 2]
    table = pa.table({"item_id": ["i7000001"], "user_id": ["u5"], "timestamp": [0]})
    write_table(table, tmp_path / "splits" / "train.parquet", "split")
    with pytest.raises(InputError, match="i7000001"):
        D.load_interactions(tmp_path)


def test_epoch_batches_do_not_depend_on_workers_or_ranks():
    import torch
    from torch.utils.data import DataLoader
    data = random_interactions(seed=5, n_users=60)
    samples = S.SeqSamples(data)

    def collect(workers, rank=0, world=1):
        dataset = S.EpochBatches(samples, 8, seed=3, epoch=2, rank=rank, world=world)
        out = list(DataLoader(dataset, batch_size=None, num_workers=workers))
        assert len(out) == len(dataset)
        return out

    single = collect(0)
    for a, b in zip(single, collect(2)):
        assert a[1] == b[1] and all(torch.equal(a[0][k], b[0][k]) for k in a[0])
    halves = [collect(0, rank=r, world=2) for r in range(2)]
    # 2 ranks x 8 rows per step = the rows of a 16-row global batch, interleaved
    doubled = list(DataLoader(S.EpochBatches(samples, 16, seed=3, epoch=2), batch_size=None))
    for step, (whole, rows) in enumerate(doubled):
        merged = torch.empty_like(whole["pos"])
        merged[0::2], merged[1::2] = halves[0][step][0]["pos"], halves[1][step][0]["pos"]
        assert torch.equal(merged, whole["pos"]) and rows == halves[0][step][1]
