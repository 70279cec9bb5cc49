"""Hypothesis strategies shared by the codec and chunking property tests."""

from __future__ import annotations

from typing import Any

from hypothesis import strategies as st

_INT64 = st.integers(-(2**63), 2**64 - 1)


def msgpack_states(
    max_leaves: int,
    max_items: int | None = None,
    max_bytes: int | None = None,
    int_keys: bool = True,
) -> st.SearchStrategy[Any]:
    """Any value msgpack round-trips: scalars, lists and maps of them, nested.

    ``max_items`` bounds every list and map, ``max_bytes`` every string and
    byte string; ``int_keys`` lets maps have integer keys as well as text ones.
    """
    keys: st.SearchStrategy[Any] = st.text(max_size=max_bytes)
    if int_keys:
        keys = keys | _INT64

    # A named function, not a lambda: Hypothesis checks that ``extend`` uses its
    # argument by reading its source, which it cannot always do for a lambda.
    def containers(children: st.SearchStrategy[Any]) -> st.SearchStrategy[Any]:
        return st.lists(children, max_size=max_items) | st.dictionaries(
            keys, children, max_size=max_items
        )

    return st.recursive(
        st.none()
        | st.booleans()
        | _INT64
        | st.floats(allow_nan=False)
        | st.text(max_size=max_bytes)
        | st.binary(max_size=max_bytes),
        containers,
        max_leaves=max_leaves,
    )
