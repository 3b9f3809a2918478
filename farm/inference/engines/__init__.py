"""Whisper back ends behind one Protocol; ``load_engine`` picks one by name.

Each back end is imported only when chosen, so a CTranslate2 worker never loads torch
(the two runtimes' thread pools fight when they share a process).
"""

from __future__ import annotations

from farm.constants import ENGINES
from farm.errors import ConfigError
from farm.inference.engines.base import Engine, EngineConfig


def load_engine(name: str, config: EngineConfig) -> Engine:
    """Build the named engine; this loads the model, so call it once per process."""
    if name == "ctranslate2":
        from farm.inference.engines.ctranslate2 import CTranslate2Engine

        return CTranslate2Engine(config)
    if name == "transformers":
        from farm.inference.engines.transformers import TransformersEngine

        return TransformersEngine(config)
    raise ConfigError(f"engine: unknown engine {name!r}; choose one of {', '.join(ENGINES)}")
