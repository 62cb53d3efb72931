"""LLMVoX: the streaming speech-token GPT and its text side.

- :mod:`vxlib.llmvox.model` -- :class:`GPT` (official parameter names), :func:`load_checkpoint`,
  :class:`KVCache`, :class:`InputEmbedder`, :class:`SpeechGenerator`, :class:`SpeculativeGenerator`, :func:`quantize_int8`;
- :mod:`vxlib.llmvox.text` -- reference text ids (:func:`encode_text`) and embedding tables.
"""

from vxlib.llmvox.model import (
    EOA_CODE,
    IGNORE_INDEX,
    GPT,
    CheckpointError,
    GPTConfig,
    InputEmbedder,
    KVCache,
    SpeechGenerator,
    SpeculativeGenerator,
    load_checkpoint,
    quantize_int8,
)
from vxlib.llmvox.text import EOS_ID, PAD_ID, default_byte_embedding, encode_text, load_byt5_embedding

__all__ = [
    "EOA_CODE",
    "IGNORE_INDEX",
    "EOS_ID",
    "PAD_ID",
    "GPT",
    "GPTConfig",
    "CheckpointError",
    "InputEmbedder",
    "KVCache",
    "SpeechGenerator",
    "SpeculativeGenerator",
    "load_checkpoint",
    "quantize_int8",
    "encode_text",
    "load_byt5_embedding",
    "default_byte_embedding",
]
