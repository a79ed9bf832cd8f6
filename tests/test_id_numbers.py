"""pipelines.id_numbers: the byte checks + integer parse accept exactly the canonical ids."""
from __future__ import annotations

import re

import pyarrow as pa

from pipelines.id_numbers import canonical_numbers

CANONICAL = re.compile(r"^u(0|[1-9][0-9]{0,17})$")
ODD = ["u01", "u00", "u", "", "i5", "U5", "u-1", "u+1", "u 1", "u1 ", "u1a", "u0x1", "u1x1", "u1.0",
       "u1e3", "u１", "ué", "éu", "u" + "9" * 19, "uu1", "u0b1", "u1_0"]
GOOD = ["u0", "u7", "u10", "u123456789", "u" + "9" * 18]


def test_same_ids_as_the_regular_expression():
    for id_ in ODD + GOOD:
        ids = pa.array(["u3", id_, "u4"]).slice(1, 1)  # a slice: offsets not starting at 0
        got = canonical_numbers(ids, "u")
        got = None if got is None else got.tolist()
        expected = [int(id_[1:])] if CANONICAL.match(id_) else None
        assert got == expected, f"{id_!r}: got {got}, expected {expected}"


def test_whole_arrays_slices_nulls_and_other_string_types():
    numbers = [int(g[1:]) for g in GOOD]
    assert canonical_numbers(pa.array(GOOD), "u").tolist() == numbers
    assert canonical_numbers(pa.array(GOOD).slice(2), "u").tolist() == numbers[2:]
    assert canonical_numbers(pa.array(GOOD, pa.large_string()), "u").tolist() == numbers
    assert canonical_numbers(pa.array([], pa.string()), "u").tolist() == []
    assert canonical_numbers(pa.array(["u1", None]), "u") is None
    assert canonical_numbers(pa.array(["i1", "i2"]), "u") is None
    assert canonical_numbers(pa.array(["i1", "i2"]), "i").tolist() == [1, 2]
    chunked = pa.chunked_array([pa.array(GOOD[:2]), pa.array(GOOD[2:])])
    assert canonical_numbers(chunked, "u").tolist() == numbers
    assert canonical_numbers(pa.chunked_array([pa.array(GOOD), pa.array(["u01"])]), "u") is None
    assert canonical_numbers(pa.chunked_array([], pa.string()), "u").tolist() == []
