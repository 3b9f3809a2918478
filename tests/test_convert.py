from __future__ import annotations

import json
import shutil
import struct
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from transformers import WhisperForConditionalGeneration, WhisperProcessor

from farm.errors import ModelNotFoundError, PermanentError
from farm.inference.weights.convert import import_ct2
from farm.inference.weights.ct2_model import read_ct2_model
from tests.conftest import tiny_en_ct2


def load_json(path: Path) -> Any:
    return json.loads(path.read_text(encoding="utf-8"))


def test_reader_resolves_aliases_and_scalars() -> None:
    tensors = read_ct2_model(tiny_en_ct2() / "model.bin")
    assert tensors["decoder/projection/weight"] is tensors["decoder/embeddings/weight"]
    assert tensors["decoder/embeddings/weight"].shape == (51864, 384)
    assert int(tensors["encoder/num_heads"]) == 6
    # HF's k_proj has no bias: the fused q/k/v bias must hold zeros for k
    assert not tensors["encoder/layer_0/self_attention/linear_0/bias"][384:768].any()


def test_tiny_en_config(tiny_en_hf: Path) -> None:
    config = load_json(tiny_en_hf / "config.json")
    assert {k: config[k] for k in ("d_model", "encoder_layers", "decoder_layers", "vocab_size")} == {
        "d_model": 384, "encoder_layers": 4, "decoder_layers": 4, "vocab_size": 51864,
    }  # fmt: skip
    assert (config["encoder_attention_heads"], config["decoder_attention_heads"]) == (6, 6)
    assert (config["encoder_ffn_dim"], config["num_mel_bins"]) == (1536, 80)
    assert (config["max_source_positions"], config["max_target_positions"]) == (1500, 448)
    assert (config["decoder_start_token_id"], config["eos_token_id"], config["pad_token_id"]) == (50257, 50256, 50256)


def test_tiny_en_generation_config(tiny_en_hf: Path) -> None:
    generation = load_json(tiny_en_hf / "generation_config.json")
    ct2 = load_json(tiny_en_ct2() / "config.json")
    assert generation["is_multilingual"] is False
    assert "lang_to_id" not in generation  # its presence makes transformers detect a language
    assert generation["no_timestamps_token_id"] == 50362
    assert generation["alignment_heads"] == ct2["alignment_heads"]
    assert generation["suppress_tokens"] == ct2["suppress_ids"]
    assert generation["begin_suppress_tokens"] == ct2["suppress_ids_begin"] == [220, 50256]


def test_weights_load_without_missing_or_unexpected_keys(tiny_en_hf: Path) -> None:
    model, info = WhisperForConditionalGeneration.from_pretrained(str(tiny_en_hf), output_loading_info=True)
    assert not info["missing_keys"] and not info["unexpected_keys"] and not info["mismatched_keys"]
    ct2 = read_ct2_model(tiny_en_ct2() / "model.bin")
    fused = ct2["decoder/layer_1/attention/linear_1/weight"].astype(np.float32)
    k_proj = model.model.decoder.layers[1].encoder_attn.k_proj.weight.detach().numpy()
    assert np.array_equal(k_proj, fused[:384])
    assert model.proj_out.weight.data_ptr() == model.model.decoder.embed_tokens.weight.data_ptr()


def test_processor_loads_with_timestamp_tokens(tiny_en_hf: Path) -> None:
    processor = WhisperProcessor.from_pretrained(str(tiny_en_hf))
    tokenizer = processor.tokenizer
    assert tokenizer.convert_tokens_to_ids(["<|0.00|>", "<|30.00|>"]) == [50363, 51863]
    assert processor.feature_extractor.feature_size == 80
    assert load_json(tiny_en_hf / "preprocessor_config.json")["feature_size"] == 80
    text = tokenizer.decode([50257, 50362, 843, 523, 616, 5891, 3399, 50256], skip_special_tokens=True)
    assert text == " And so my fellow Americans"


def test_multilingual_base(base_hf: Path) -> None:
    config = load_json(base_hf / "config.json")
    generation = load_json(base_hf / "generation_config.json")
    assert (config["vocab_size"], config["d_model"], config["encoder_layers"]) == (51865, 512, 6)
    assert (config["decoder_start_token_id"], config["eos_token_id"]) == (50258, 50257)
    assert generation["is_multilingual"] is True
    assert generation["lang_to_id"]["<|en|>"] == 50259 and len(generation["lang_to_id"]) == 99
    assert generation["task_to_id"] == {"transcribe": 50359, "translate": 50358}
    assert generation["no_timestamps_token_id"] == 50363
    processor = WhisperProcessor.from_pretrained(str(base_hf))
    assert processor.tokenizer.convert_tokens_to_ids("<|0.00|>") == 50364


def test_int8_model_is_dequantized(tiny_en_hf: Path, tmp_path: Path) -> None:
    from ctranslate2.converters import TransformersConverter

    int8 = Path(TransformersConverter(str(tiny_en_hf)).convert(str(tmp_path / "int8"), quantization="int8"))
    for name in ("config.json", "tokenizer.json"):  # the converter writes its own versions
        shutil.copy(tiny_en_ct2() / name, int8 / name)
    original = read_ct2_model(tiny_en_ct2() / "model.bin")
    restored = read_ct2_model(int8 / "model.bin")
    assert restored["decoder/projection/weight"] is restored["decoder/embeddings/weight"]
    assert not any(name.endswith("_scale") for name in restored)
    for name in ("encoder/conv1/weight", "decoder/layer_2/self_attention/linear_0/weight"):
        exact = original[name].astype(np.float32)
        step = np.abs(exact).reshape(len(exact), -1).max(axis=1) / 127  # one int8 step per row
        assert np.all(np.abs(restored[name] - exact).reshape(len(exact), -1) <= step[:, None] * 0.51 + 1e-6)
    hf = import_ct2(int8, tmp_path / "int8-hf")
    _, info = WhisperForConditionalGeneration.from_pretrained(str(hf), output_loading_info=True)
    assert not info["missing_keys"] and not info["unexpected_keys"]


def test_missing_model_raises_model_not_found(tmp_path: Path) -> None:
    with pytest.raises(ModelNotFoundError):
        import_ct2(tmp_path / "nowhere", tmp_path / "out")
    with pytest.raises(ModelNotFoundError):
        read_ct2_model(tmp_path / "model.bin")


@pytest.mark.parametrize("keep", [3, 1000, 2_000_000], ids=["header", "tensor-table", "tensor-data"])
def test_truncated_model_raises_permanent_and_leaves_nothing(tmp_path: Path, keep: int) -> None:
    src = tmp_path / "broken"
    src.mkdir()
    (src / "model.bin").write_bytes((tiny_en_ct2() / "model.bin").read_bytes()[:keep])
    for name in ("config.json", "tokenizer.json"):
        shutil.copy(tiny_en_ct2() / name, src / name)
    with pytest.raises(PermanentError, match="truncated"):
        import_ct2(src, tmp_path / "out")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["broken"]  # no half-written output


def test_not_a_whisper_model(tmp_path: Path) -> None:
    name = b"TestSpec\x00"
    (tmp_path / "model.bin").write_bytes(struct.pack("<IH", 6, len(name)) + name)
    with pytest.raises(PermanentError, match="not a Whisper model"):
        read_ct2_model(tmp_path / "model.bin")


def test_conversion_replaces_an_existing_directory(tiny_en_hf: Path, tmp_path: Path) -> None:
    dst = tmp_path / "model"
    dst.mkdir()
    (dst / "stale.txt").write_text("old")
    assert import_ct2(tiny_en_ct2(), dst) == dst
    assert not (dst / "stale.txt").exists()
    assert (dst / "model.safetensors").read_bytes() == (tiny_en_hf / "model.safetensors").read_bytes()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["model"]
