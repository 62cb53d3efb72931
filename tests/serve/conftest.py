"""A live server on a loopback port: uvicorn in a thread, a tiny random GPT over the reduced
golden WavTokenizer, a pool of two replica pairs, a small text limit, and a test double for ASR
(the endpoint plumbing is under test here, not Whisper)."""

from __future__ import annotations

import socket
import threading
import time

import pytest

from vxlib.codec.wavtokenizer import WavTokenizer
from vxlib.llmvox.model import GPTConfig
from vxlib.llmvox.stream import MultiQueueStreamer, StreamConfig, TTSStack
from vxlib.serve.app import ServerConfig, StreamerPool, create_app
from vxlib.serve.client import TTSClient

REDUCED = dict(encoder_dim=32, encoder_filters=8)
STREAM = StreamConfig(max_pad_tokens=10, max_tokens_per_sentence=300)
LIMITS = ServerConfig(pool_size=2, max_text_chars=500, max_body_bytes=64 * 1024, max_audio_s=2.0, acquire_timeout_s=30.0)
HEARD = "What did you hear."  # what the ASR test double "recognises"


@pytest.fixture(scope="package")
def stack(golden_dir) -> TTSStack:
    d = golden_dir / "wavtokenizer"
    codec = WavTokenizer.from_pretrained(d / "wavtokenizer_reduced.yaml", d / "wavtokenizer_reduced.ckpt", **REDUCED)
    config = GPTConfig(n_layer=1, n_head=2, n_embd=32 + codec.feature_dim, vocab_size=codec.codebook_size, block_size=512)
    return TTSStack.random_demo(codec, config)


@pytest.fixture(scope="package")
def reference(stack):
    """In-process speech for a text: what the server must send for it (greedy decoding is deterministic)."""
    streamer = MultiQueueStreamer(stack, STREAM)
    return lambda text: streamer.speak(text)[0]


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="package")
def server(stack):
    import uvicorn

    pool = StreamerPool(stack, STREAM, LIMITS.pool_size)
    app = create_app(pool, LIMITS, transcriber=lambda wav, sr, lang: HEARD)
    port = _free_port()
    srv = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning", ws="websockets-sansio"))
    thread = threading.Thread(target=srv.run, name="test-uvicorn", daemon=True)
    thread.start()
    deadline = time.monotonic() + 30
    while not srv.started:
        if time.monotonic() > deadline or not thread.is_alive():
            raise RuntimeError("the test server did not start")
        time.sleep(0.05)
    yield TTSClient("127.0.0.1", port, timeout=60), pool
    srv.should_exit = True
    thread.join(10)
