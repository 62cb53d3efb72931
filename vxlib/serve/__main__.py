"""``python -m vxlib.serve``: start the streaming TTS server.

The reference's flags (``--chat_type``, ``--llm_checkpoint``, ``--eos_token``, ``--llm_device``,
``--tts_device_1/2``, ``--asr_model``, ``--asr_device``, ``--initial_dump_size_1/2``,
``--max_dump_size``, ``--api_port``) plus vxlib's: the speech model and codec, the LLVC stage, the
bind address (127.0.0.1 unless told otherwise), the pool size and the request limits.
"""

from __future__ import annotations

import argparse
import sys

import torch

from vxlib.llmvox.stream import StreamConfig, TTSStack
from vxlib.serve.app import ServerConfig, StreamerPool, create_app


def build_parser() -> argparse.ArgumentParser:
    ap = argparse.ArgumentParser(prog="python -m vxlib.serve", description=__doc__.split("\n\n")[0])
    ref = ap.add_argument_group("reference flags")
    ref.add_argument("--chat_type", choices=["text", "voice", "visual_speech", "multimodal"], default="text")
    ref.add_argument("--llm_checkpoint", default="", help="local HF causal LM (text/voice) or VLM directory; "
                     "empty: prompts are spoken as given")
    ref.add_argument("--eos_token", default="<|eot_id|>", help="end-of-turn string of the LLM (<|im_end|>, <|end|> ...)")
    ref.add_argument("--llm_device", default="cpu")
    ref.add_argument("--tts_device_1", default="cpu", help="replica A's device")
    ref.add_argument("--tts_device_2", default="cpu", help="replica B's device (a second GPU when present)")
    ref.add_argument("--asr_model", default="", help="faster-whisper model directory; empty: packaged tiny.en")
    ref.add_argument("--asr_device", default="cpu", choices=["cpu"], help="faster-whisper runs on CPU here")
    defaults = StreamConfig()
    ref.add_argument("--initial_dump_size_1", type=int, default=defaults.initial_dump_size_1)
    ref.add_argument("--initial_dump_size_2", type=int, default=defaults.initial_dump_size_2)
    ref.add_argument("--max_dump_size", type=int, default=defaults.max_dump_size)
    ref.add_argument("--api_port", type=int, default=5003)
    vx = ap.add_argument_group("vxlib")
    vx.add_argument("--host", default="127.0.0.1", help="bind address (0.0.0.0 exposes the server to the network)")
    vx.add_argument("--gpt_checkpoint", default="", help="LLMVoX GPT ckpt; empty: an UNTRAINED random demo model")
    vx.add_argument("--codec", default="", choices=["", "world", "wavtokenizer", "wavtokenizer-random"],
                    help="empty: the codec the checkpoint records")
    vx.add_argument("--codec_dir", default="", help="fitted WorldCodec directory (--codec world)")
    vx.add_argument("--wavtokenizer_config", default="")
    vx.add_argument("--wavtokenizer_ckpt", default="")
    vx.add_argument("--llvc_checkpoint", default="", help="LLVC generator checkpoint: enables target_voice")
    vx.add_argument("--llvc_config", default="")
    vx.add_argument("--pool_size", type=int, default=ServerConfig.pool_size)
    vx.add_argument("--max_text_chars", type=int, default=ServerConfig.max_text_chars)
    vx.add_argument("--max_pad_tokens", type=int, default=None, help="cap on PAD steps after a sentence's text")
    vx.add_argument("--threads", type=int, default=0, help="torch intra-op threads (0: torch default)")
    vx.add_argument("--gpt_precision", default="fp32", choices=["fp32", "int8"],
                    help="int8: dynamically quantised GPT linears (CPU; ~2.5x faster decoding)")
    vx.add_argument("--decoder_precision", default="fp32", choices=["fp32", "int8"],
                    help="int8: WavTokenizer decoder with int8 weights (CPU; ~3x faster short chunks)")
    vx.add_argument("--seed", type=int, default=0)
    return ap


def codec_spec(a: argparse.Namespace) -> dict | None:
    if not a.codec:
        return None
    if a.codec == "world":
        return {"type": "world", "dir": a.codec_dir}
    if a.codec == "wavtokenizer":
        return {"type": "wavtokenizer", "config": a.wavtokenizer_config, "ckpt": a.wavtokenizer_ckpt}
    return {"type": a.codec}


def build_app(a: argparse.Namespace):
    if a.threads:
        torch.set_num_threads(a.threads)
    stack = TTSStack.load(a.gpt_checkpoint, codec_spec(a), a.seed)
    if a.tts_device_1 != "cpu":
        stack = stack.to(a.tts_device_1)
    stack_b = stack.to(a.tts_device_2) if a.tts_device_2 != a.tts_device_1 else None
    stream_cfg = StreamConfig(initial_dump_size_1=a.initial_dump_size_1, initial_dump_size_2=a.initial_dump_size_2,
                              max_dump_size=a.max_dump_size, max_pad_tokens=a.max_pad_tokens,
                              gpt_precision=a.gpt_precision, decoder_precision=a.decoder_precision)
    voice_factory = None
    if a.llvc_checkpoint:
        from vxlib.llmvox.chain import TargetVoiceStage

        voice_factory = lambda: TargetVoiceStage.from_files(a.llvc_checkpoint, a.llvc_config, stack.sample_rate)  # noqa: E731
    pool = StreamerPool(stack, stream_cfg, a.pool_size, voice_factory, stack_b)
    chat_source = vision_source = transcriber = None
    if a.chat_type in ("text", "voice") and a.llm_checkpoint:
        from vxlib.llmvox.sources import HFChatSource

        chat_source = HFChatSource(a.llm_checkpoint, a.eos_token, a.llm_device)
    if a.chat_type in ("visual_speech", "multimodal"):
        from vxlib.llmvox.sources import VisionChatSource

        vision_source = VisionChatSource(a.llm_checkpoint, a.eos_token, a.llm_device)
    if a.chat_type in ("voice", "multimodal"):
        transcriber = whisper_transcriber(a.asr_model or None)
    return create_app(pool, ServerConfig(chat_type=a.chat_type, pool_size=a.pool_size, max_text_chars=a.max_text_chars),
                      chat_source, transcriber, vision_source)


def whisper_transcriber(model_dir: str | None):
    """``(wav, sr, language) -> text`` with faster-whisper (packaged tiny.en unless ``model_dir``);
    one model per language, loaded on first use."""
    from vxlib.asr import WhisperTranscriber

    models: dict[str, WhisperTranscriber] = {}

    def transcribe(wav, sr: int, language: str) -> str:
        if language not in models:
            models[language] = WhisperTranscriber(model_dir, language=language)
        return models[language].transcribe(wav, sr)

    return transcribe


def main(argv: list[str] | None = None) -> int:
    a = build_parser().parse_args(argv)
    import uvicorn

    app = build_app(a)
    print(f"serving on http://{a.host}:{a.api_port} ({app.state.pool.size} replica pairs)", flush=True)
    uvicorn.run(app, host=a.host, port=a.api_port, log_level="warning")
    return 0


if __name__ == "__main__":
    sys.exit(main())
