"""OpenTelemetry spans and metrics, when ``opentelemetry-api`` is installed; nothing otherwise.

Every public operation of the store runs in a span named ``recostate.<operation>``
(``recostate.save``, ``recostate.load``, ``recostate.rollback``...; kind CLIENT,
``db.system`` = ``redis``, ``recostate.state_id``, and after a write or read
``recostate.version``, ``recostate.size_bytes``, ``recostate.stored_bytes``,
``recostate.compression``). A failed call records its exception and sets the
span's status to error. State contents are never recorded.

Metrics, from the meter ``recostate``:

=================================  =========  ==================================================
``recostate.operation.duration``   histogram  seconds per call; ``recostate.operation``,
                                              ``error.type`` when it raised
``recostate.state.size``           histogram  bytes of each state written, encoded, before
                                              compression
``recostate.state.stored_size``    histogram  bytes stored per version written or read;
                                              ``recostate.operation``
``recostate.compression.ratio``    histogram  encoded bytes per stored byte of each write;
                                              ``recostate.compression``
``recostate.conflicts``            counter    lost compare-and-sets and refused explicit versions
``recostate.integrity_failures``   counter    versions that failed their checksum or decoding
=================================  =========  ==================================================

The global tracer and meter providers are used, so configuring the
OpenTelemetry SDK (or an auto-instrumentation agent) is all it takes. With
only the API installed and no provider set, each call checks that once and
goes straight through, without spans or metrics: the API's no-op objects cost
tens of microseconds per call, a third of a small save. Set
``RECOSTATE_TELEMETRY=off`` to skip even the check.
"""

from __future__ import annotations

import functools
import os
import time
from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING, Any, TypeVar

__all__ = [
    "ENABLED",
    "configure",
    "record_conflict",
    "record_integrity_failure",
    "record_read",
    "record_write",
    "traced",
]

if TYPE_CHECKING:
    from recostate._types import StateMetadata

try:
    from opentelemetry import metrics as _metrics
    from opentelemetry import trace as _trace
except ImportError:  # pragma: no cover - exercised where opentelemetry-api is absent
    _trace = None  # type: ignore[assignment]
    _metrics = None  # type: ignore[assignment]
    _metrics_state: Any = None
else:
    try:
        from opentelemetry.metrics import _internal as _metrics_state
    except ImportError:  # pragma: no cover - an API that keeps its globals elsewhere
        _metrics_state = None

_MISSING = object()
_environment_names_provider: bool | None = None

#: Whether spans and metrics are produced at all.
ENABLED = _trace is not None and os.environ.get("RECOSTATE_TELEMETRY", "").lower() not in {
    "0",
    "off",
    "false",
    "no",
}

_NAME = "recostate"
F = TypeVar("F", bound=Callable[..., Awaitable[Any]])


class _Instruments:
    """The tracer and the metric instruments, made once per provider pair."""

    def __init__(self, tracer_provider: Any = None, meter_provider: Any = None) -> None:
        from recostate import __version__

        self.tracer = _trace.get_tracer(_NAME, __version__, tracer_provider=tracer_provider)
        meter = _metrics.get_meter(_NAME, __version__, meter_provider=meter_provider)
        self.duration = meter.create_histogram(
            "recostate.operation.duration", unit="s", description="Duration of store operations"
        )
        self.state_size = meter.create_histogram(
            "recostate.state.size", unit="By", description="Encoded size of each state written"
        )
        self.stored_size = meter.create_histogram(
            "recostate.state.stored_size", unit="By", description="Stored size per version"
        )
        self.ratio = meter.create_histogram(
            "recostate.compression.ratio", unit="1", description="Encoded bytes per stored byte"
        )
        self.conflicts = meter.create_counter(
            "recostate.conflicts", description="Lost compare-and-sets and refused explicit versions"
        )
        self.integrity_failures = meter.create_counter(
            "recostate.integrity_failures", description="Versions failing checksum or decoding"
        )


_instruments: _Instruments | None = None
_configured = False

# The API's stand-ins while no SDK is installed: a provider of one of these
# types records nothing, so recostate skips the work of feeding it.
_UNSET_PROVIDERS = {
    "ProxyTracerProvider",
    "_ProxyMeterProvider",
    "NoOpTracerProvider",
    "NoOpMeterProvider",
}


def _globals_unset() -> bool:
    """Tell, cheaply, that no global provider is set nor named by the environment.

    ``get_tracer_provider()`` and ``get_meter_provider()`` look their
    environment variables up on every call while no provider is set: two
    ``os.environ`` reads each, about a tenth of a small save's client time.
    The API keeps the providers it was given in module globals, read here;
    an API without them takes the public path.
    """
    tracer = getattr(_trace, "_TRACER_PROVIDER", _MISSING)
    meter = getattr(_metrics_state, "_METER_PROVIDER", _MISSING)
    if tracer is not None or meter is not None:
        return False
    return not _providers_from_environment()


def _providers_from_environment() -> bool:
    # Read once: the API itself loads such a provider on its first use.
    global _environment_names_provider
    if _environment_names_provider is None:
        _environment_names_provider = any(
            name in os.environ for name in ("OTEL_PYTHON_TRACER_PROVIDER", "OTEL_PYTHON_METER_PROVIDER")
        )
    return _environment_names_provider


def _active() -> bool:
    """Tell whether a real tracer or meter provider is there to receive anything."""
    if _configured:
        return True
    if _globals_unset():
        return False
    return (
        type(_trace.get_tracer_provider()).__name__ not in _UNSET_PROVIDERS
        or type(_metrics.get_meter_provider()).__name__ not in _UNSET_PROVIDERS
    )


def _get() -> _Instruments:
    global _instruments
    if _instruments is None:
        _instruments = _Instruments()
    return _instruments


def configure(tracer_provider: Any = None, meter_provider: Any = None) -> None:
    """Use these providers instead of the global ones (``None``, ``None``: back to global).

    For tests and for applications that keep their providers out of the globals.
    """
    global _instruments, _configured
    if _trace is None:
        return
    _instruments = _Instruments(tracer_provider, meter_provider)
    _configured = tracer_provider is not None or meter_provider is not None


def traced(operation: str, *, id_position: int = 0) -> Callable[[F], F]:
    """Run the decorated store method in a span and time it.

    ``id_position`` is the index of the ``state_id`` argument after ``self``.
    Without OpenTelemetry the method is returned unchanged.
    """

    def decorate(func: F) -> F:
        if not ENABLED:
            return func
        span_name = f"{_NAME}.{operation}"

        @functools.wraps(func)
        async def wrapper(self: Any, *args: Any, **kwargs: Any) -> Any:
            if not _active():
                return await func(self, *args, **kwargs)
            instruments = _get()
            state_id = kwargs.get(
                "state_id", args[id_position] if len(args) > id_position else None
            )
            attributes: dict[str, Any] = {"db.system": "redis", "recostate.operation": operation}
            if isinstance(state_id, str):
                attributes["recostate.state_id"] = state_id
            measured: dict[str, Any] = {"recostate.operation": operation}
            started = time.perf_counter()
            with instruments.tracer.start_as_current_span(
                span_name, kind=_trace.SpanKind.CLIENT, attributes=attributes
            ):
                try:
                    return await func(self, *args, **kwargs)
                except BaseException as exc:
                    measured["error.type"] = type(exc).__name__
                    raise
                finally:
                    instruments.duration.record(time.perf_counter() - started, measured)

        return wrapper  # type: ignore[return-value]

    return decorate


def record_write(meta: StateMetadata) -> None:
    """Record the sizes and compression of a version just written."""
    if not ENABLED or not _active():
        return
    instruments = _get()
    codec = meta.compression_type.value
    span = _trace.get_current_span()
    span.set_attribute("recostate.version", meta.version)
    span.set_attribute("recostate.size_bytes", meta.size_bytes)
    span.set_attribute("recostate.stored_bytes", meta.stored_bytes)
    span.set_attribute("recostate.compression", codec)
    instruments.state_size.record(meta.size_bytes)
    instruments.stored_size.record(meta.stored_bytes, {"recostate.operation": "save"})
    if meta.stored_bytes:
        instruments.ratio.record(
            meta.size_bytes / meta.stored_bytes, {"recostate.compression": codec}
        )


def record_read(version: int, stored_bytes: int) -> None:
    """Record a version just read."""
    if not ENABLED or not _active():
        return
    span = _trace.get_current_span()
    span.set_attribute("recostate.version", version)
    span.set_attribute("recostate.stored_bytes", stored_bytes)
    _get().stored_size.record(stored_bytes, {"recostate.operation": "load"})


def record_conflict() -> None:
    """Count a lost compare-and-set or a refused explicit version."""
    if ENABLED and _active():
        _get().conflicts.add(1)


def record_integrity_failure() -> None:
    """Count a version that failed its checksum or its decoding."""
    if ENABLED and _active():
        _get().integrity_failures.add(1)
