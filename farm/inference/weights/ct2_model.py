"""Read CTranslate2's ``model.bin``: a header, then name/rank/dims/dtype/bytes per tensor.

The format is CTranslate2's own (binary version 6): little-endian, length-prefixed
strings, every variable stored whole, then an alias table (the tied output projection).
"""

from __future__ import annotations

import struct
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt

from farm.errors import ModelNotFoundError, PermanentError

Tensors = dict[str, npt.NDArray[Any]]

_BINARY_VERSION = 6
_MODEL_NAME = "WhisperSpec"
# dtype ids 0..5: float32, int8, int16, int32, float16, bfloat16 (numpy has no bfloat16:
# read as uint16 and widened to float32)
_DTYPES = [np.dtype(code) for code in ("<f4", "i1", "<i2", "<i4", "<f2", "<u2")]
_BFLOAT16 = 5


class _Reader:
    """A cursor over model.bin that turns a short read into a PermanentError."""

    def __init__(self, data: bytes, path: Path) -> None:
        self._data = memoryview(data)
        self._pos = 0
        self._path = path

    def take(self, size: int) -> memoryview:
        if self._pos + size > len(self._data):
            raise PermanentError(f"{self._path} is truncated at byte {self._pos}; re-download the model")
        chunk = self._data[self._pos : self._pos + size]
        self._pos += size
        return chunk

    def unpack(self, fmt: str) -> tuple[int, ...]:
        return struct.unpack("<" + fmt, self.take(struct.calcsize("<" + fmt)))

    def uint(self, fmt: str = "I") -> int:
        return self.unpack(fmt)[0]

    def string(self) -> str:
        raw = bytes(self.take(self.uint("H")))
        return raw.rstrip(b"\0").decode("utf-8")

    def at_end(self) -> bool:
        return self._pos == len(self._data)


def _read_array(reader: _Reader) -> npt.NDArray[Any]:
    shape = reader.unpack(f"{reader.uint('B')}I")
    dtype_id = reader.uint("B")
    if dtype_id >= len(_DTYPES):
        raise PermanentError(f"model.bin uses unknown dtype id {dtype_id}")
    raw = reader.take(reader.uint())
    array = np.frombuffer(raw, dtype=_DTYPES[dtype_id])
    if array.size != int(np.prod(shape)):
        raise PermanentError(f"model.bin tensor of shape {shape} holds {array.size} values")
    if dtype_id == _BFLOAT16:
        array = (array.astype(np.uint32) << 16).view(np.float32)
    return array.reshape(shape)


def _dequantize(tensors: Tensors) -> Tensors:
    """Fold ``*_scale`` into the integer weights CTranslate2 stores for int8/int16 models."""
    out = dict(tensors)
    for name in [n for n in tensors if n.endswith("/weight_scale")]:
        weight_name = name.removesuffix("_scale")
        scale = out.pop(name).astype(np.float32)
        weight = out[weight_name].astype(np.float32)
        # int8 has one scale per output channel (conv kernels too), int16 a single one;
        # CTranslate2 stored round(w * scale)
        out[weight_name] = weight / scale.reshape(scale.shape + (1,) * (weight.ndim - scale.ndim))
    return out


def read_ct2_model(path: Path | str) -> Tensors:
    """Read every variable of a CTranslate2 Whisper ``model.bin``, aliases resolved.

    Quantized weights come back dequantized to float32; other tensors keep their stored
    dtype (bfloat16 is widened to float32).
    """
    path = Path(path)
    if not path.is_file():
        raise ModelNotFoundError(f"no CTranslate2 model file at {path}")
    reader = _Reader(path.read_bytes(), path)
    version = reader.uint()
    if version != _BINARY_VERSION:
        raise PermanentError(f"{path}: model.bin version {version}, only {_BINARY_VERSION} is supported")
    name = reader.string()
    if name != _MODEL_NAME:
        raise PermanentError(f"{path} holds a {name!r}, not a Whisper model")
    reader.uint()  # spec revision: the layout is the same for every Whisper revision so far
    stored: Tensors = {}
    for _ in range(reader.uint()):
        variable = reader.string()
        stored[variable] = _read_array(reader)
    # dequantize first, so an alias (the tied output projection) sees the float weights
    tensors = _dequantize(stored)
    for _ in range(reader.uint()):
        alias, target = reader.string(), reader.string()
        if target.endswith("_scale") and target in stored:
            continue  # already folded into its weight
        if target not in tensors:
            raise PermanentError(f"{path}: alias {alias} points at missing {target}")
        tensors[alias] = tensors[target]
    if not reader.at_end():
        raise PermanentError(f"{path} has trailing bytes after the alias table")
    return tensors
