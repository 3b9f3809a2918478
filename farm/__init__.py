"""whisperfarm: a speech-to-text farm of Celery workers running Whisper."""

__version__ = "0.1.0"
