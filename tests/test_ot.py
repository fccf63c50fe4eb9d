"""The text OT core: the laws the materializer and every client rely on."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from shared_schema import ot
from shared_schema.ot import OTError

# Multi-byte and astral characters, so any byte/UTF-16 counting would show.
ALPHABET = "ab é🙂\n"
PROPERTY = settings(max_examples=250, deadline=None)

docs = st.text(alphabet=ALPHABET, max_size=20)


@st.composite
def ops_for(draw: st.DrawFn, doc: str) -> list[int | str]:
    """A valid (not necessarily normalized) op over ``doc``."""
    ops: list[int | str] = []
    left = len(doc)
    for _ in range(12):
        kind = draw(st.sampled_from(["stop", "retain", "delete", "insert"]))
        if kind == "stop":
            break
        if kind == "insert":
            ops.append(draw(st.text(alphabet=ALPHABET, min_size=1, max_size=4)))
        elif left:
            n = draw(st.integers(1, left))
            ops.append(n if kind == "retain" else -n)
            left -= n
    if left:
        ops.append(left if draw(st.booleans()) else -left)
    return ops


@st.composite
def doc_and_ops(draw: st.DrawFn, count: int) -> tuple[str, list[list[int | str]]]:
    doc = draw(docs)
    return doc, [draw(ops_for(doc)) for _ in range(count)]


@st.composite
def doc_and_chain(draw: st.DrawFn) -> tuple[str, list[int | str], list[int | str]]:
    """A doc, an op on it, and an op on the result."""
    doc = draw(docs)
    a = draw(ops_for(doc))
    b = draw(ops_for(ot.apply(doc, a)))
    return doc, a, b


def is_normal(ops: list[int | str]) -> bool:
    def kind(c: int | str) -> str:
        return "insert" if isinstance(c, str) else "retain" if c > 0 else "delete"

    kinds = [kind(c) for c in ops]
    return (
        all(c != 0 and c != "" for c in ops)
        and all(x != y for x, y in zip(kinds, kinds[1:], strict=False))
        and ("delete", "insert") not in zip(kinds, kinds[1:], strict=False)
    )


# --- apply and normalize -------------------------------------------------------


def test_apply_examples() -> None:
    assert ot.apply("hello", [1, "EY", -2, 2]) == "hEYlo"
    assert ot.apply("", ["🙂"]) == "🙂"
    assert ot.apply("é🙂x", [2, -1]) == "é🙂"  # code points, not bytes or UTF-16 units
    assert ot.apply("", []) == ""


def test_normalize_examples() -> None:
    assert ot.normalize([1, 2, "a", "b", -1, -2, 3]) == [3, "ab", -3, 3]
    assert ot.normalize([-1, "a"]) == ["a", -1]  # insert before delete
    assert ot.normalize(["a", -1, "b"]) == ["ab", -1]
    assert ot.normalize([0, "", 2]) == [2]  # trailing retain kept
    assert ot.normalize([]) == []


@PROPERTY
@given(doc_and_ops(1))
def test_normalize_is_idempotent_and_keeps_meaning(case: tuple[str, list]) -> None:
    doc, (ops,) = case
    once = ot.normalize(ops)
    assert is_normal(once)
    assert ot.normalize(once) == once
    assert ot.apply(doc, once) == ot.apply(doc, ops)
    assert ot.base_length(once) == ot.base_length(ops) == len(doc)
    assert ot.target_length(once) == ot.target_length(ops) == len(ot.apply(doc, ops))


def test_lengths_and_noop() -> None:
    assert ot.base_length([2, "abc", -3, 1]) == 6
    assert ot.target_length([2, "abc", -3, 1]) == 6
    assert ot.is_noop([]) and ot.is_noop([5]) and ot.is_noop([2, 3])
    assert not ot.is_noop([2, "x"]) and not ot.is_noop([-1])


def test_apply_is_linear_for_many_components() -> None:
    text = "x" * 50_000
    ops = [1, "y"] * 50_000
    assert ot.apply(text, ops) == "xy" * 50_000
    assert ot.normalize(["a"] * 100_000) == ["a" * 100_000]


# --- compose -------------------------------------------------------------------


@PROPERTY
@given(doc_and_chain())
def test_compose_equals_applying_in_turn(case: tuple[str, list, list]) -> None:
    doc, a, b = case
    ab = ot.compose(a, b)
    assert ot.apply(doc, ab) == ot.apply(ot.apply(doc, a), b)
    assert is_normal(ab)
    assert ot.base_length(ab) == len(doc)


def test_compose_example() -> None:
    assert ot.compose([1, "x", 1], [3, "y"]) == [1, "x", 1, "y"]
    assert ot.compose(["abc"], [1, -1, 1]) == ["ac"]  # deleting what was just inserted


# --- transform -----------------------------------------------------------------


@PROPERTY
@given(doc_and_ops(2))
def test_transform_converges(case: tuple[str, list]) -> None:
    doc, (a, b) = case
    a2, b2 = ot.transform(a, b)
    assert ot.apply(ot.apply(doc, a), b2) == ot.apply(ot.apply(doc, b), a2)
    assert is_normal(a2) and is_normal(b2)


@PROPERTY
@given(doc_and_ops(2))
def test_transform_keeps_every_insert(case: tuple[str, list]) -> None:
    doc, (a, b) = case
    a2, b2 = ot.transform(a, b)
    inserted = lambda ops: sorted("".join(c for c in ops if isinstance(c, str)))  # noqa: E731
    assert inserted(a2) == inserted(a)
    assert inserted(b2) == inserted(b)


def test_transform_tie_puts_first_argument_first() -> None:
    a2, b2 = ot.transform([1, "A", 1], [1, "B", 1])
    assert ot.apply(ot.apply("xy", [1, "A", 1]), b2) == "xABy"
    assert ot.apply(ot.apply("xy", [1, "B", 1]), a2) == "xABy"


def test_transform_overlapping_deletes() -> None:
    a2, b2 = ot.transform([1, -3, 1], [2, -3])  # "abcde": delete bcd / delete cde
    assert ot.apply(ot.apply("abcde", [1, -3, 1]), b2) == "a"
    assert ot.apply(ot.apply("abcde", [2, -3]), a2) == "a"


# --- diff ----------------------------------------------------------------------


@PROPERTY
@given(docs, docs)
def test_diff_round_trips(old: str, new: str) -> None:
    ops = ot.diff(old, new)
    assert ot.apply(old, ops) == new
    assert is_normal(ops)


def test_diff_keeps_common_prefix_and_suffix() -> None:
    assert ot.diff("abc", "abXc") == [2, "X", 1]
    assert ot.diff("aaa", "aa") == [2, -1]
    assert ot.diff("same", "same") == [4]
    assert ot.diff("", "") == []


# --- transform_index -----------------------------------------------------------


def test_transform_index_tie_depends_on_whose_insert() -> None:
    assert ot.transform_index(2, [2, "xy", 1]) == 2
    assert ot.transform_index(2, [2, "xy", 1], own=True) == 4
    assert ot.transform_index(3, [1, "x", -3]) == 2  # inside a deletion: its start
    assert ot.transform_index(4, [4, "z"]) == 4


# Distinct base characters (CJK) and inserts from another alphabet, so where a
# character went can be read off the result.
@PROPERTY
@given(st.data(), st.integers(0, 12), st.booleans())
def test_transform_index_follows_kept_characters(data: st.DataObject, n: int, own: bool) -> None:
    doc = "".join(chr(0x4E00 + i) for i in range(n))
    ops = data.draw(ops_for(doc))
    result = ot.apply(doc, ops)
    for i, char in enumerate(doc):
        if char in result:
            moved, at = ot.transform_index(i, ops, own=own), result.index(char)
            if own:  # after anything inserted right before the character
                assert moved == at
            else:  # before it: only new text between the cursor and the character
                assert moved <= at and not set(result[moved:at]) & set(doc)
    end = ot.transform_index(len(doc), ops, own=own)
    assert 0 <= end <= len(result)


def test_transform_index_rejects_out_of_range() -> None:
    with pytest.raises(OTError):
        ot.transform_index(4, [3])
    with pytest.raises(OTError):
        ot.transform_index(-1, [3])


# --- errors --------------------------------------------------------------------


def test_length_mismatches_raise() -> None:
    with pytest.raises(OTError, match="base length"):
        ot.apply("abc", [2])
    with pytest.raises(OTError, match="base length"):
        ot.apply("abc", [4])
    with pytest.raises(OTError, match="compose"):
        ot.compose([3], [2])
    with pytest.raises(OTError, match="base lengths"):
        ot.transform([3], [2, "x"])


def test_ot_error_is_a_value_error() -> None:
    assert issubclass(OTError, ValueError)


def test_validate_normalizes() -> None:
    assert ot.validate([1, 2, -1, "a"]) == [3, "a", -1]
    assert ot.validate([]) == []


@pytest.mark.parametrize(
    ("ops", "message"),
    [
        ("abc", "must be a list"),
        ((1, 2), "must be a list"),
        ({"0": 1}, "must be a list"),
        (None, "must be a list"),
        ([True], r"ops\[0\].*bool"),
        ([1, False], r"ops\[1\].*bool"),
        ([0], r"ops\[0\] is zero"),
        ([1, ""], r"ops\[1\] is an empty insert"),
        ([1.0], r"ops\[0\].*float"),
        ([[1]], r"ops\[0\].*list"),
        ([None], r"ops\[0\].*NoneType"),
        (["\ud800"], "surrogate"),
    ],
)
def test_validate_rejects(ops: object, message: str) -> None:
    with pytest.raises(OTError, match=message):
        ot.validate(ops)


def test_validate_limits_components() -> None:
    assert ot.validate([1, "a"] * 5, max_components=10) == [1, "a"] * 5
    with pytest.raises(OTError, match="limit is 10"):
        ot.validate([1, "a"] * 5 + [1], max_components=10)


def test_malformed_components_raise_ot_error_everywhere() -> None:
    for call in (
        lambda: ot.normalize([1.5]),
        lambda: ot.apply("a", [True]),
        lambda: ot.base_length([None]),
        lambda: ot.compose([1], [[1]]),
        lambda: ot.transform([1], [b"x"]),
    ):
        with pytest.raises(OTError):
            call()
