"""Audio codecs for LLMVoX: the :class:`AudioCodec` interface and its implementations.

- :class:`WavTokenizer` -- the official 75 tokens/s codec, loaded from its ``.ckpt`` + YAML;
- :class:`WorldCodec` -- the embedded offline codec (WORLD features + one 4096-entry codebook + a learned envelope
  decoder, fitted on a local corpus). It is a stand-in so that notebooks run with nothing downloaded, not the paper's tokenizer.
"""

from vxlib.codec.base import AudioCodec, CodecError
from vxlib.codec.wavtokenizer import WavTokenizer, WavTokenizerConfig
from vxlib.codec.world_codec import WorldCodec, WorldCodecConfig

__all__ = ["AudioCodec", "CodecError", "WavTokenizer", "WavTokenizerConfig", "WorldCodec", "WorldCodecConfig"]
