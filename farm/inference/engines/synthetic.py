"""Benchmark-only Whisper models: a published shape with random weights.

The GPU host we benchmark on is air-gapped and large weights are too big to bring, but a
model's speed depends on its shape, not on its weights. ``build`` writes a transformers
model directory with the layer counts and widths of a published Whisper size, random
weights, and a generation config that decodes exactly ``tokens_per_window`` tokens per
30 s window (end-of-text is suppressed until then): about what 30 s of speech yields.
Its transcripts are noise; only its timings mean anything, and every figure from it is
labelled with ``label`` ("synthetic weights, N tokens/window").

Nothing in the settings reaches this module: only ``bench/gpu_check.py --shape`` does.
"""

from __future__ import annotations

import json
import shutil
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from transformers import GenerationConfig, WhisperConfig

DEFAULT_TOKENS_PER_WINDOW = 100
_SPECIAL_IDS = ("bos_token_id", "eos_token_id", "pad_token_id", "decoder_start_token_id")
MARKER = "synthetic.json"
# The processor files a transformers Whisper directory needs besides the weights.
_PROCESSOR_FILES = (
    "tokenizer.json", "tokenizer_config.json", "special_tokens_map.json", "added_tokens.json",
    "vocab.json", "merges.txt", "normalizer.json", "processor_config.json",
)  # fmt: skip


@dataclass(frozen=True)
class Shape:
    """What sets a Whisper model's cost: widths, depths, mel bins and vocabulary."""

    d_model: int
    encoder_layers: int
    decoder_layers: int
    heads: int
    n_mels: int = 80
    vocab_size: int = 51865

    @property
    def ffn_dim(self) -> int:
        return 4 * self.d_model


# From the published model configs (openai/whisper-*, config.json).
SHAPES: dict[str, Shape] = {
    "tiny": Shape(d_model=384, encoder_layers=4, decoder_layers=4, heads=6),
    "base": Shape(d_model=512, encoder_layers=6, decoder_layers=6, heads=8),
    "small": Shape(d_model=768, encoder_layers=12, decoder_layers=12, heads=12),
    "medium": Shape(d_model=1024, encoder_layers=24, decoder_layers=24, heads=16),
    "large-v3": Shape(d_model=1280, encoder_layers=32, decoder_layers=32, heads=20, n_mels=128, vocab_size=51866),
    "large-v3-turbo": Shape(d_model=1280, encoder_layers=32, decoder_layers=4, heads=20, n_mels=128, vocab_size=51866),
}


@dataclass(frozen=True)
class Synthetic:
    """What ``build`` made, as recorded in the directory's ``synthetic.json``."""

    shape: str
    tokens_per_window: int
    parameters: int
    dtype: str

    @property
    def label(self) -> str:
        return label(self.tokens_per_window)


def label(tokens_per_window: int) -> str:
    """The caption every figure from a synthetic model carries."""
    return f"synthetic weights, {tokens_per_window} tokens/window"


def build(
    shape: str,
    tokenizer_dir: Path,
    out: Path,
    tokens_per_window: int = DEFAULT_TOKENS_PER_WINDOW,
    dtype: str = "float16",
    device: str = "cpu",
) -> Synthetic:
    """Write a random-weight Whisper of ``shape`` to ``out``; tokenizer from ``tokenizer_dir``.

    ``tokenizer_dir`` is any multilingual transformers Whisper directory (the packaged
    ``base`` converted, or the tokenizer files bench/prepare_gpu_wheels.sh gathers).
    """
    import torch
    from transformers import WhisperForConditionalGeneration

    if shape not in SHAPES:
        raise ValueError(f"shape {shape!r}: choose one of {', '.join(SHAPES)}")
    out.mkdir(parents=True, exist_ok=True)
    torch.manual_seed(0)
    with torch.device(device):
        model = WhisperForConditionalGeneration(_config(SHAPES[shape], tokenizer_dir))
    model = model.to(getattr(torch, dtype)).eval()
    model.generation_config = _generation_config(tokenizer_dir, tokens_per_window)
    model.save_pretrained(str(out))
    _copy_processor(tokenizer_dir, out, SHAPES[shape].n_mels)
    made = Synthetic(shape, tokens_per_window, sum(p.numel() for p in model.parameters()), dtype)
    (out / MARKER).write_text(json.dumps(asdict(made), indent=2), encoding="utf-8")
    return made


def read_marker(model_dir: Path) -> Synthetic | None:
    """The synthetic model's record, or None for a real model directory."""
    path = model_dir / MARKER
    if not path.is_file():
        return None
    return Synthetic(**json.loads(path.read_text(encoding="utf-8")))


def _config(shape: Shape, tokenizer_dir: Path) -> WhisperConfig:
    from transformers import WhisperConfig

    reference = json.loads((tokenizer_dir / "config.json").read_text(encoding="utf-8"))
    special = {key: reference[key] for key in _SPECIAL_IDS}
    return WhisperConfig(
        vocab_size=shape.vocab_size,
        num_mel_bins=shape.n_mels,
        d_model=shape.d_model,
        encoder_layers=shape.encoder_layers,
        decoder_layers=shape.decoder_layers,
        encoder_attention_heads=shape.heads,
        decoder_attention_heads=shape.heads,
        encoder_ffn_dim=shape.ffn_dim,
        decoder_ffn_dim=shape.ffn_dim,
        max_source_positions=1500,
        max_target_positions=448,
        **special,
    )


def _generation_config(tokenizer_dir: Path, tokens_per_window: int) -> GenerationConfig:
    from transformers import GenerationConfig

    config = GenerationConfig.from_pretrained(str(tokenizer_dir))
    # exactly N new tokens: end-of-text is suppressed until N, and decoding stops at N
    config.max_new_tokens = tokens_per_window
    config.min_new_tokens = tokens_per_window
    return config


def _copy_processor(tokenizer_dir: Path, out: Path, n_mels: int) -> None:
    for name in _PROCESSOR_FILES:
        if (tokenizer_dir / name).is_file():
            shutil.copyfile(tokenizer_dir / name, out / name)
    features = json.loads((tokenizer_dir / "preprocessor_config.json").read_text(encoding="utf-8"))
    features["feature_size"] = n_mels
    (out / "preprocessor_config.json").write_text(json.dumps(features, indent=2), encoding="utf-8")
