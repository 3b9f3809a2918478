"""Turn the runtimes' own exceptions into whisperfarm's retryable/permanent split."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

from farm.errors import FarmError, ResourceExhaustedError, UnknownLanguageError

_OOM_MARKERS = ("out of memory", "CUDA_ERROR_OUT_OF_MEMORY", "std::bad_alloc")


@contextmanager
def translate_failure() -> Iterator[None]:
    """Re-raise out-of-memory as retryable and bad languages as permanent."""
    try:
        yield
    except FarmError:
        raise
    except MemoryError as exc:
        raise ResourceExhaustedError(f"out of memory: {exc}") from exc
    except (RuntimeError, ValueError) as exc:
        message = str(exc)
        if any(marker in message for marker in _OOM_MARKERS):
            raise ResourceExhaustedError(f"device out of memory: {message}") from exc
        if "language" in message.lower():
            raise UnknownLanguageError(message) from exc
        raise
