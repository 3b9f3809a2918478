"""Turn a CTranslate2 Whisper model into a Hugging Face ``transformers`` model directory.

Every model the farm ships is in CTranslate2 format; the transformers engine needs the
same weights as a ``WhisperForConditionalGeneration`` checkpoint. The tensor mapping is
the inverse of CTranslate2's own transformers converter, so converted weights are the
very numbers faster-whisper runs, which is what makes the two engines comparable.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt

from farm.errors import ModelNotFoundError, PermanentError
from farm.inference.weights.ct2_model import Tensors, read_ct2_model

_GELU = 3  # CTranslate2's ops::ActivationType::GELU, the exact erf form HF calls "gelu"
_TIMESTAMP_TOKENS = 1501  # <|0.00|> .. <|30.00|> in 20 ms steps
_MAX_LENGTH = 448


@dataclass(frozen=True)
class ModelDims:
    """The shape of a Whisper model, read off its tensors."""

    n_mels: int
    d_model: int
    vocab_size: int
    encoder_layers: int
    decoder_layers: int
    encoder_heads: int
    decoder_heads: int
    ffn_dim: int
    max_source_positions: int
    max_target_positions: int

    @property
    def is_multilingual(self) -> bool:
        return self.vocab_size >= 51865


def _count_layers(tensors: Tensors, stack: str) -> int:
    pattern = re.compile(rf"{stack}/layer_(\d+)/")
    indices = {int(m.group(1)) for name in tensors if (m := pattern.match(name))}
    if indices != set(range(len(indices))) or not indices:
        raise PermanentError(f"model.bin has no contiguous {stack} layers")
    return len(indices)


def _scalar(tensors: Tensors, name: str) -> int:
    if name not in tensors:
        raise PermanentError(f"model.bin lacks {name}")
    return int(tensors[name].reshape(()))


def model_dims(tensors: Tensors) -> ModelDims:
    try:
        conv1 = tensors["encoder/conv1/weight"]
        d_model, n_mels = conv1.shape[0], conv1.shape[1]
        return ModelDims(
            n_mels=n_mels,
            d_model=d_model,
            vocab_size=tensors["decoder/embeddings/weight"].shape[0],
            encoder_layers=_count_layers(tensors, "encoder"),
            decoder_layers=_count_layers(tensors, "decoder"),
            encoder_heads=_scalar(tensors, "encoder/num_heads"),
            decoder_heads=_scalar(tensors, "decoder/num_heads"),
            ffn_dim=tensors["encoder/layer_0/ffn/linear_0/weight"].shape[0],
            max_source_positions=tensors["encoder/position_encodings/encodings"].shape[0],
            max_target_positions=tensors["decoder/position_encodings/encodings"].shape[0],
        )
    except KeyError as missing:
        raise PermanentError(f"model.bin lacks tensor {missing}") from None


class _Mapper:
    """Copies CTranslate2 variables to HF names, remembering which ones it used."""

    def __init__(self, tensors: Tensors) -> None:
        self._tensors = tensors
        self.used: set[str] = set()
        self.out: Tensors = {}

    def get(self, name: str) -> npt.NDArray[np.float32]:
        if name not in self._tensors:
            raise PermanentError(f"model.bin lacks tensor {name}")
        self.used.add(name)
        return np.ascontiguousarray(self._tensors[name], dtype=np.float32)

    def put(self, hf: str, value: npt.NDArray[np.float32]) -> None:
        self.out[hf] = np.ascontiguousarray(value)

    def copy(self, hf: str, ct2: str) -> None:
        self.put(hf, self.get(ct2))

    def linear(self, hf: str, ct2: str) -> None:
        self.copy(f"{hf}.weight", f"{ct2}/weight")
        self.copy(f"{hf}.bias", f"{ct2}/bias")

    def layer_norm(self, hf: str, ct2: str) -> None:
        self.copy(f"{hf}.weight", f"{ct2}/gamma")
        self.copy(f"{hf}.bias", f"{ct2}/beta")

    def split(self, hf: str, ct2: str, projections: tuple[str, ...]) -> None:
        """Undo a fused q/k/v linear; HF's k_proj has no bias, CTranslate2 stored zeros."""
        weights = np.split(self.get(f"{ct2}/weight"), len(projections))
        biases = np.split(self.get(f"{ct2}/bias"), len(projections))
        for proj, weight, bias in zip(projections, weights, biases, strict=True):
            self.put(f"{hf}.{proj}.weight", weight)
            if proj != "k_proj":
                self.put(f"{hf}.{proj}.bias", bias)


def _map_self_attention(m: _Mapper, hf: str, ct2: str) -> None:
    m.split(f"{hf}.self_attn", f"{ct2}/self_attention/linear_0", ("q_proj", "k_proj", "v_proj"))
    m.linear(f"{hf}.self_attn.out_proj", f"{ct2}/self_attention/linear_1")
    m.layer_norm(f"{hf}.self_attn_layer_norm", f"{ct2}/self_attention/layer_norm")


def _map_cross_attention(m: _Mapper, hf: str, ct2: str) -> None:
    m.linear(f"{hf}.encoder_attn.q_proj", f"{ct2}/attention/linear_0")
    m.split(f"{hf}.encoder_attn", f"{ct2}/attention/linear_1", ("k_proj", "v_proj"))
    m.linear(f"{hf}.encoder_attn.out_proj", f"{ct2}/attention/linear_2")
    m.layer_norm(f"{hf}.encoder_attn_layer_norm", f"{ct2}/attention/layer_norm")


def _map_ffn(m: _Mapper, hf: str, ct2: str) -> None:
    m.linear(f"{hf}.fc1", f"{ct2}/ffn/linear_0")
    m.linear(f"{hf}.fc2", f"{ct2}/ffn/linear_1")
    m.layer_norm(f"{hf}.final_layer_norm", f"{ct2}/ffn/layer_norm")


def _map_encoder(m: _Mapper, layers: int) -> None:
    m.linear("model.encoder.conv1", "encoder/conv1")
    m.linear("model.encoder.conv2", "encoder/conv2")
    m.copy("model.encoder.embed_positions.weight", "encoder/position_encodings/encodings")
    for i in range(layers):
        _map_self_attention(m, f"model.encoder.layers.{i}", f"encoder/layer_{i}")
        _map_ffn(m, f"model.encoder.layers.{i}", f"encoder/layer_{i}")
    m.layer_norm("model.encoder.layer_norm", "encoder/layer_norm")


def _map_decoder(m: _Mapper, layers: int) -> None:
    m.copy("model.decoder.embed_tokens.weight", "decoder/embeddings/weight")
    m.copy("model.decoder.embed_positions.weight", "decoder/position_encodings/encodings")
    for i in range(layers):
        _map_self_attention(m, f"model.decoder.layers.{i}", f"decoder/layer_{i}")
        _map_cross_attention(m, f"model.decoder.layers.{i}", f"decoder/layer_{i}")
        _map_ffn(m, f"model.decoder.layers.{i}", f"decoder/layer_{i}")
    m.layer_norm("model.decoder.layer_norm", "decoder/layer_norm")
    projection = m.get("decoder/projection/weight")
    # HF ties proj_out to embed_tokens and saves only the latter
    if not np.array_equal(projection, m.out["model.decoder.embed_tokens.weight"]):
        raise PermanentError("model.bin has an output projection not tied to the embeddings")


def hf_state_dict(tensors: Tensors, dims: ModelDims) -> Tensors:
    """The float32 HF state dict for CTranslate2 ``tensors``; rejects leftover weights."""
    if "decoder/activation" in tensors and _scalar(tensors, "decoder/activation") != _GELU:
        raise PermanentError("model.bin uses an activation other than GELU; not a Whisper model")
    mapper = _Mapper(tensors)
    _map_encoder(mapper, dims.encoder_layers)
    _map_decoder(mapper, dims.decoder_layers)
    leftover = sorted(n for n, t in tensors.items() if t.ndim > 0 and n not in mapper.used)
    if leftover:
        raise PermanentError(f"model.bin has tensors this converter does not know: {leftover[:5]}")
    return mapper.out


@dataclass(frozen=True)
class SpecialTokens:
    """Whisper's control token ids, looked up by name because .en and multilingual differ."""

    eot: int
    sot: int
    translate: int
    transcribe: int
    prev: int
    no_timestamps: int
    languages: dict[str, int]


def _special_tokens(added: dict[str, int]) -> SpecialTokens:
    try:
        sot, translate = added["<|startoftranscript|>"], added["<|translate|>"]
        # language tokens sit between <|startoftranscript|> and <|translate|>
        languages = {tok: i for tok, i in added.items() if sot < i < translate}
        return SpecialTokens(
            eot=added["<|endoftext|>"],
            sot=sot,
            translate=translate,
            transcribe=added["<|transcribe|>"],
            prev=added["<|startofprev|>"],
            no_timestamps=added["<|notimestamps|>"],
            languages=languages,
        )
    except KeyError as missing:
        raise PermanentError(f"tokenizer.json lacks the special token {missing}") from None


def _load_json(path: Path) -> Any:
    if not path.is_file():
        raise ModelNotFoundError(f"CTranslate2 model directory lacks {path.name}: {path}")
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise PermanentError(f"{path} is not valid JSON: {exc}") from exc


def _with_timestamp_tokens(tokenizer: dict[str, Any], tokens: SpecialTokens, vocab_size: int) -> dict[str, Any]:
    """Add <|0.00|>..<|30.00|> where the tokenizer lacks them (older .en exports do).

    transformers decodes segment offsets by these names; they are not special, so that
    ``skip_special_tokens`` keeps them for its own timestamp filter, as on the hub.
    """
    present = {entry["content"] for entry in tokenizer["added_tokens"]}
    first = tokens.no_timestamps + 1
    flags = {"single_word": False, "lstrip": False, "rstrip": False, "normalized": True, "special": False}
    for i in range(min(_TIMESTAMP_TOKENS, vocab_size - first)):
        content = f"<|{i * 0.02:.2f}|>"
        if content not in present:
            tokenizer["added_tokens"].append({"id": first + i, "content": content, **flags})
    return tokenizer


def _bos(dims: ModelDims, tokens: SpecialTokens) -> int:
    # as in the published openai/whisper-* checkpoints; generate never emits it
    return tokens.eot if dims.is_multilingual else tokens.sot


def _model_config(dims: ModelDims, tokens: SpecialTokens) -> dict[str, Any]:
    return {
        "model_type": "whisper",
        "architectures": ["WhisperForConditionalGeneration"],
        "vocab_size": dims.vocab_size,
        "num_mel_bins": dims.n_mels,
        "d_model": dims.d_model,
        "encoder_layers": dims.encoder_layers,
        "decoder_layers": dims.decoder_layers,
        "encoder_attention_heads": dims.encoder_heads,
        "decoder_attention_heads": dims.decoder_heads,
        "encoder_ffn_dim": dims.ffn_dim,
        "decoder_ffn_dim": dims.ffn_dim,
        "max_source_positions": dims.max_source_positions,
        "max_target_positions": dims.max_target_positions,
        "activation_function": "gelu",
        "scale_embedding": False,
        "tie_word_embeddings": True,
        "torch_dtype": "float32",
        "bos_token_id": _bos(dims, tokens),
        "eos_token_id": tokens.eot,
        "pad_token_id": tokens.eot,
        "decoder_start_token_id": tokens.sot,
        # suppress lists live in generation_config.json only: transformers warns when
        # the model config carries generation settings too
    }


def _generation_config(dims: ModelDims, tokens: SpecialTokens, ct2_config: dict[str, Any]) -> dict[str, Any]:
    config: dict[str, Any] = {
        "alignment_heads": ct2_config.get("alignment_heads", []),
        "suppress_tokens": ct2_config.get("suppress_ids", []),
        "begin_suppress_tokens": ct2_config.get("suppress_ids_begin", [220, tokens.eot]),
        "bos_token_id": _bos(dims, tokens),
        "eos_token_id": tokens.eot,
        "pad_token_id": tokens.eot,
        "decoder_start_token_id": tokens.sot,
        "no_timestamps_token_id": tokens.no_timestamps,
        "prev_sot_token_id": tokens.prev,
        "is_multilingual": dims.is_multilingual,
        "max_initial_timestamp_index": 50,
        "max_length": _MAX_LENGTH,
        "return_timestamps": False,
    }
    # transformers runs language detection whenever lang_to_id exists, so .en models omit it
    if dims.is_multilingual:
        config["lang_to_id"] = tokens.languages
        config["task_to_id"] = {"transcribe": tokens.transcribe, "translate": tokens.translate}
    return config


def _write_json(path: Path, value: Any) -> None:
    path.write_text(json.dumps(value, indent=2, ensure_ascii=False) + "\n", encoding="utf-8")


def _write_processor(dst: Path, tokenizer_json: Path, n_mels: int) -> None:
    # imported here: transformers is heavy and only the conversion needs it
    from tokenizers import Tokenizer
    from transformers import WhisperFeatureExtractor, WhisperProcessor, WhisperTokenizer

    raw = json.loads(tokenizer_json.read_text(encoding="utf-8"))
    specials = [entry["content"] for entry in raw["added_tokens"] if entry.get("special")]
    eot = "<|endoftext|>"
    tokenizer = WhisperTokenizer(
        tokenizer_object=Tokenizer.from_file(str(tokenizer_json)),
        **dict.fromkeys(("unk_token", "bos_token", "eos_token", "pad_token"), eot),
        additional_special_tokens=specials,
    )
    features = WhisperFeatureExtractor(feature_size=n_mels)  # type: ignore[no-untyped-call]
    processor = WhisperProcessor(feature_extractor=features, tokenizer=tokenizer)  # type: ignore[no-untyped-call]
    processor.save_pretrained(str(dst))
    features.to_json_file(str(dst / "preprocessor_config.json"))


def _write_model_dir(src: Path, dst: Path) -> None:
    from safetensors.numpy import save_file

    ct2_config = _load_json(src / "config.json")
    tokenizer = _load_json(src / "tokenizer.json")
    tensors = read_ct2_model(src / "model.bin")
    dims = model_dims(tensors)
    added = {entry["content"]: entry["id"] for entry in tokenizer.get("added_tokens", [])}
    tokens = _special_tokens(added)
    save_file(hf_state_dict(tensors, dims), str(dst / "model.safetensors"), metadata={"format": "pt"})
    del tensors
    _write_json(dst / "config.json", _model_config(dims, tokens))
    _write_json(dst / "generation_config.json", _generation_config(dims, tokens, ct2_config))
    staged = dst / "tokenizer.src.json"
    _write_json(staged, _with_timestamp_tokens(tokenizer, tokens, dims.vocab_size))
    _write_processor(dst, staged, dims.n_mels)
    staged.unlink()


def _swap_in(staging: Path, dst: Path) -> None:
    """Move ``staging`` to ``dst`` so readers only ever see a complete directory."""
    old = None
    if dst.exists():
        old = Path(tempfile.mkdtemp(prefix=f".{dst.name}.old-", dir=dst.parent))
        os.rename(dst, old / dst.name)
    os.rename(staging, dst)
    if old is not None:
        shutil.rmtree(old, ignore_errors=True)


def import_ct2(src_dir: Path, dst_dir: Path) -> Path:
    """Convert the CTranslate2 Whisper model in ``src_dir`` into an HF model at ``dst_dir``.

    The directory appears atomically (built beside it, then renamed); an existing one is
    replaced. Raises ``ModelNotFoundError`` when ``src_dir`` lacks a model and
    ``PermanentError`` when the model is corrupt or not Whisper.
    """
    src_dir, dst_dir = Path(src_dir), Path(dst_dir)
    if not (src_dir / "model.bin").is_file():
        raise ModelNotFoundError(f"no CTranslate2 model.bin in {src_dir}")
    dst_dir.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=f".{dst_dir.name}.tmp-", dir=dst_dir.parent))
    try:
        _write_model_dir(src_dir, staging)
        _swap_in(staging, dst_dir)
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise
    return dst_dir
