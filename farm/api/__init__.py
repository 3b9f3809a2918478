"""The REST API (``farm api``): OpenAI-compatible transcription, async jobs, probes, metrics.

Producer-side only: it submits through ``farm.client`` and never imports torch, numpy
or the audio decoder, so it runs from ``pip install whisperfarm[api]``.
"""

from farm.api.app import create_app, serve

__all__ = ["create_app", "serve"]
