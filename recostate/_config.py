"""The settings of one store, checked once, at construction, with no I/O."""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

from recostate._errors import ConfigurationError
from recostate._signing import SigningKeys
from recostate._types import CompressionType

__all__ = ["DEFAULT_CHUNK_THRESHOLD", "MAX_PAYLOAD_CEILING", "MiB", "StoreConfig"]

MiB = 1024 * 1024
# Redis refuses bulk strings over 512 MB; keep a margin for the frame.
MAX_PAYLOAD_CEILING = 500 * MiB
#: Encoded states of at least this many bytes are stored in chunks. Small
#: enough that a state growing by a message a step is shared from its third or
#: fourth version on; large enough that the 1 KiB states of a typical service
#: stay one frame, as fast as before.
DEFAULT_CHUNK_THRESHOLD = 4096


def _int_option(name: str, value: object, *, minimum: int) -> int:
    if isinstance(value, bool) or not isinstance(value, int):
        raise ConfigurationError(f"{name} must be an int, not {type(value).__name__}")
    if value < minimum:
        raise ConfigurationError(f"{name} must be >= {minimum}, got {value}")
    return int(value)


def _number_option(name: str, value: object, *, minimum: float) -> float:
    # NaN compares false with everything, so it would slip past the minimum.
    if (
        isinstance(value, bool)
        or not isinstance(value, (int, float))
        or not math.isfinite(value)
        or value < minimum
    ):
        raise ConfigurationError(f"{name} must be a finite number >= {minimum}, got {value!r}")
    return float(value)


def _wait_timeout(value: object) -> float:
    seconds = _number_option("wait_timeout", value, minimum=0.0)
    # WAIT takes whole milliseconds, and 0 would mean "block forever".
    if not math.isfinite(seconds) or seconds < 0.001:
        raise ConfigurationError(f"wait_timeout must be at least 0.001 seconds, got {value!r}")
    return seconds


def _compression(value: object) -> CompressionType:
    if isinstance(value, CompressionType):
        return value
    if isinstance(value, str):
        try:
            return CompressionType(value.lower())
        except ValueError:
            pass
    choices = ", ".join(member.name for member in CompressionType)
    raise ConfigurationError(f"unknown compression_type {value!r}; choose one of {choices}")


@dataclass(frozen=True)
class StoreConfig:
    """Validated store settings (see ``RedisStatePersistence`` for each one's meaning)."""

    compression_type: CompressionType
    enable_versioning: bool
    max_versions: int
    default_ttl: int | None
    key_prefix: str
    compression_threshold: int
    offload_threshold: int
    max_payload_bytes: int
    retries: int
    retry_backoff: float
    signing: SigningKeys | None = None
    wait_for_replicas: int = 0
    wait_timeout: float = 1.0
    chunk_threshold: int | None = DEFAULT_CHUNK_THRESHOLD

    @property
    def versions_kept(self) -> int:
        """How many versions a save keeps: ``max_versions``, or 1 without versioning."""
        return self.max_versions if self.enable_versioning else 1

    @classmethod
    def build(
        cls,
        *,
        compression_type: Any,
        enable_versioning: Any,
        max_versions: Any,
        default_ttl: Any,
        key_prefix: Any,
        compression_threshold: Any,
        offload_threshold: Any,
        max_payload_bytes: Any,
        retries: Any,
        retry_backoff: Any,
        signing_key: Any = None,
        wait_for_replicas: Any = 0,
        wait_timeout: Any = 1.0,
        chunk_threshold: Any = DEFAULT_CHUNK_THRESHOLD,
    ) -> StoreConfig:
        """Check every option and return the settings, or raise ``ConfigurationError``."""
        if not isinstance(enable_versioning, bool):
            raise ConfigurationError("enable_versioning must be a bool")
        if default_ttl is not None:
            default_ttl = _int_option("default_ttl", default_ttl, minimum=1)
        if not isinstance(key_prefix, str) or not key_prefix:
            raise ConfigurationError("key_prefix must be a non-empty str")
        try:
            key_prefix.encode("utf-8")
        except UnicodeEncodeError as exc:
            raise ConfigurationError("key_prefix must be encodable as UTF-8") from exc
        if "{" in key_prefix or "}" in key_prefix:
            # A brace in the prefix would become every key's Redis Cluster hash
            # tag and put all states in one slot.
            raise ConfigurationError("key_prefix must not contain '{' or '}'")
        max_payload = _int_option("max_payload_bytes", max_payload_bytes, minimum=1)
        if max_payload > MAX_PAYLOAD_CEILING:
            raise ConfigurationError(
                f"max_payload_bytes must be at most {MAX_PAYLOAD_CEILING} (Redis's bulk limit is 512 MB)"
            )
        return cls(
            compression_type=_compression(compression_type),
            enable_versioning=enable_versioning,
            max_versions=_int_option("max_versions", max_versions, minimum=1),
            default_ttl=default_ttl,
            key_prefix=key_prefix,
            compression_threshold=_int_option(
                "compression_threshold", compression_threshold, minimum=0
            ),
            offload_threshold=_int_option("offload_threshold", offload_threshold, minimum=0),
            max_payload_bytes=max_payload,
            retries=_int_option("retries", retries, minimum=0),
            retry_backoff=_number_option("retry_backoff", retry_backoff, minimum=0.0),
            signing=SigningKeys.build(signing_key),
            wait_for_replicas=_int_option("wait_for_replicas", wait_for_replicas, minimum=0),
            wait_timeout=_wait_timeout(wait_timeout),
            chunk_threshold=None
            if chunk_threshold is None
            else _int_option("chunk_threshold", chunk_threshold, minimum=1),
        )
