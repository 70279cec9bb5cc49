"""pydantic v2 models as states: the codec's msgspec hooks, without importing pydantic.

A model is stored as its data: what ``model_dump(mode="python", by_alias=True,
round_trip=True)`` gives, encoded by msgspec like any other state, so it reads
back without pydantic (``load()`` with no ``type=`` returns a dict). The
``python`` mode keeps the values msgspec encodes natively as they are:
``bytes`` stay binary (``mode="json"`` writes them as UTF-8 text, which fails
for arbitrary bytes), datetimes stay msgpack timestamps that any reader decodes
as datetimes (an aware one comes back in UTC, the same instant), UUIDs,
decimals, dates and durations are written as msgspec writes them everywhere
else. The few values msgspec does not know (URLs, paths, IP addresses) are
written as their JSON form. ``round_trip=True`` leaves out computed fields, so
a model with ``extra="forbid"`` validates its own data.

Decoding into a model (``type=Model``, or a type holding models:
``list[Model]``, ``dict[str, Model]``, ``Model | None``, a ``msgspec.Struct``
or dataclass with a model field) validates the decoded data with
``Model.model_validate(data, strict=False)``: stored data has lost the Python
types a strict model insists on (tuples and sets come back as lists, UUIDs as
strings), so it is validated as data read from a file is. Data that does not
validate raises ``SerializationError`` carrying pydantic's message.

pydantic is never imported here: a model instance or class can only exist if
its program imported pydantic already, so the hooks look it up in
``sys.modules``.
"""

from __future__ import annotations

import sys
from typing import Any

import msgspec

__all__ = ["dec_hook", "enc_hook"]


def _base_model() -> Any:
    """Return pydantic v2's ``BaseModel`` if pydantic is imported, else ``None``."""
    pydantic = sys.modules.get("pydantic")
    base = getattr(pydantic, "BaseModel", None)
    # pydantic 1 has a BaseModel too, without the v2 methods used here.
    return base if hasattr(base, "model_validate") else None


def _dump(model: Any) -> Any:
    return model.model_dump(mode="python", by_alias=True, round_trip=True)


def _model_value(value: Any) -> Any:
    """Encode what a model dump holds and msgspec does not: its JSON form, by pydantic."""
    from pydantic_core import PydanticSerializationError, to_jsonable_python

    try:
        return to_jsonable_python(value)
    except PydanticSerializationError:
        raise _unsupported(value) from None


def _unsupported(value: Any) -> TypeError:
    # What msgspec raises for a type it does not know, which the codec reports.
    return TypeError(f"Encoding objects of type {type(value).__name__} is unsupported")


def enc_hook(value: Any) -> Any:
    """Turn a pydantic model into its data for msgspec (its ``enc_hook``); refuse anything else."""
    base = _base_model()
    if base is not None and isinstance(value, base):
        # Encoded apart so that the JSON fallback applies inside models only:
        # a plain state holding a Path is still refused, as without pydantic.
        return msgspec.Raw(msgspec.msgpack.encode(_dump(value), enc_hook=_model_value))
    raise _unsupported(value)


def dec_hook(type_: Any, data: Any) -> Any:
    """Validate decoded data into a pydantic model class for msgspec (its ``dec_hook``)."""
    base = _base_model()
    if base is None or not isinstance(type_, type) or not issubclass(type_, base):
        # msgspec's own answer for a class it cannot decode into.
        name = getattr(type_, "__name__", repr(type_))
        raise TypeError(f"Expected `{name}`, got `{type(data).__name__}`")
    from pydantic_core import ValidationError

    model: Any = type_
    try:
        return model.model_validate(data, strict=False)
    except ValidationError as exc:
        # msgspec reports a ValueError as a ValidationError at the model's path.
        raise ValueError(_summary(exc)) from None


def _summary(exc: Any) -> str:
    """Return pydantic's validation message on one line, without the input values.

    pydantic's own message quotes each invalid input, and state contents are
    never put in errors or logs.
    """
    problems = "; ".join(
        f"{'.'.join(map(str, error['loc'])) or '(root)'}: {error['msg']}"
        for error in exc.errors(include_url=False, include_input=False)
    )
    count = exc.error_count()
    return f"{count} validation error{'s' if count > 1 else ''} for {exc.title}: {problems}"
