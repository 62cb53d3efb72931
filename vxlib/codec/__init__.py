"""Audio codecs for LLMVoX: the :class:`AudioCodec` interface and its implementations.

- :class:`WavTokenizer` -- the official 75 tokens/s codec, loaded from its ``.ckpt`` + YAML.
"""

from vxlib.codec.base import AudioCodec, CodecError
from vxlib.codec.wavtokenizer import WavTokenizer, WavTokenizerConfig

__all__ = ["AudioCodec", "CodecError", "WavTokenizer", "WavTokenizerConfig"]
