"""One error hierarchy, split by what the caller should do next.

A ``RetryableError`` is worth trying again (a storage hiccup, a CUDA out-of-memory);
a ``PermanentError`` will fail the same way every time (undecodable audio, an unknown
language), so the job fails at once with the message shown to the user.
"""


class FarmError(Exception):
    """Base class for every error whisperfarm raises on purpose."""


class RetryableError(FarmError):
    """The same job may succeed if tried again later."""


class PermanentError(FarmError):
    """The job can never succeed as submitted; retrying is pointless."""


class ConfigError(PermanentError):
    """A setting is missing, of the wrong type or out of range."""


class InvalidJobError(PermanentError):
    """A job spec is malformed or asks for an option that does not exist."""


class AudioDecodeError(PermanentError):
    """The input is not audio that can be decoded."""


class UnknownLanguageError(PermanentError):
    """The requested language is not one the model knows."""


class ModelNotFoundError(PermanentError):
    """The model setting names no local directory, packaged model or hub id."""


class StorageNotFoundError(PermanentError):
    """The referenced file or object does not exist."""


class JobNotFoundError(PermanentError):
    """No job with this id was submitted (or its records expired)."""


class StorageAccessError(PermanentError):
    """The referenced file or object exists but may not be read or written."""


class StorageUnavailableError(RetryableError):
    """The storage back end did not answer in time."""


class ResourceExhaustedError(RetryableError):
    """The device ran out of memory; a smaller batch or another worker may succeed."""


class BrokerUnavailableError(RetryableError):
    """The broker (Redis) cannot be reached."""


class JobFailedError(FarmError):
    """Raised by the client when a job ended in failure; the message is the worker's."""


class JobTimeoutError(FarmError):
    """Raised by the client when a job did not finish within the wait it was given."""
