"""The streaming TTS server: FastAPI over HTTP (chunked float32 PCM or WAV) and a WebSocket.

Endpoints (the reference's, plus a WebSocket):

- ``GET /`` -- what is loaded (model label, codec, sample rates, chat type, pool size, limits);
- ``POST /tts {text, format?, target_voice?}`` -- speak the text;
- ``POST /voicechat {audio_base64, source_language, target_language, format?, target_voice?}`` --
  int16 16 kHz mono speech -> Whisper -> the LLM's answer (or, with no LLM loaded, the transcript
  itself, as ``GET /`` says) -> speech;
- ``POST /vlmschat {text, image_base64}``, ``POST /multimodalchat {audio_base64?, text?, image_list}``
  -- only registered when a vision-language source is configured;
- ``WS /ws`` -- send ``{"text": ...}`` (or ``{"prompt": ...}`` for the chat source, ``"target_voice"``
  optional); receive ``{"type": "start", "sample_rate"}``, then per chunk a JSON header
  ``{"type": "chunk", ...}`` followed by one binary frame of float32 PCM, then ``{"type": "end"}``
  (or ``{"type": "error", "detail"}``).

HTTP responses stream ``application/octet-stream`` raw float32 little-endian mono PCM (the
reference's format; ``X-Sample-Rate`` header), or ``audio/wav`` with ``format: "wav"`` (an
IEEE-float WAV header with "unknown length" sizes, then the same samples as they are ready).

Limits: bodies over ``max_body_bytes`` -> 413 (checked on Content-Length and while reading), text
over ``max_text_chars`` -> 413, audio over ``max_audio_s`` -> 413, malformed JSON or fields -> 422,
no free replica pair within ``acquire_timeout_s`` -> 503. Each request takes one
:class:`~vxlib.llmvox.stream.MultiQueueStreamer` (two replicas with their own KV caches and
decoders) from a bounded pool, so concurrent requests never share generation state; a client
that disconnects cancels its request, and every thread of a request is joined before its
streamer goes back to the pool.
"""

from __future__ import annotations

import base64
import binascii
import json
import queue
import struct
from contextlib import contextmanager
from dataclasses import asdict, dataclass
from typing import Any, AsyncIterator, Callable, Iterator, Literal

import numpy as np
from fastapi import FastAPI, HTTPException, Request, WebSocket, WebSocketDisconnect
from fastapi.responses import JSONResponse, StreamingResponse
from pydantic import BaseModel, Field
from starlette.concurrency import run_in_threadpool

from vxlib.llmvox.chain import TargetVoiceStage
from vxlib.llmvox.sources import ScriptedSource, TextSource
from vxlib.llmvox.stream import MultiQueueStreamer, SpeechChunk, StreamConfig, TTSStack
from vxlib.stream.workers import CancelToken

__all__ = ["ServerConfig", "StreamerPool", "BodyLimit", "create_app", "wav_stream_header"]

VOICE_INPUT_RATE = 16000  # /voicechat audio: int16 mono at 16 kHz, as the reference


@dataclass
class ServerConfig:
    chat_type: Literal["text", "voice", "visual_speech", "multimodal"] = "text"
    pool_size: int = 2  # concurrent requests (each holds two replicas' KV caches and decoders)
    acquire_timeout_s: float = 10.0  # wait for a free replica pair, then 503
    max_body_bytes: int = 8 * 1024 * 1024  # ~4 min of int16 16 kHz audio as base64
    max_text_chars: int = 4000
    max_audio_s: float = 60.0
    max_images: int = 4


class TTSRequest(BaseModel):
    text: str = Field(min_length=1)
    format: Literal["pcm", "wav"] = "pcm"
    target_voice: bool = False


class VoiceChatRequest(BaseModel):
    audio_base64: str = Field(min_length=1)
    source_language: str = "en"
    target_language: str = "en"
    format: Literal["pcm", "wav"] = "pcm"
    target_voice: bool = False


class VisionChatRequest(BaseModel):
    text: str = Field(min_length=1)
    image_base64: str = Field(min_length=1)
    format: Literal["pcm", "wav"] = "pcm"
    target_voice: bool = False


class MultimodalChatRequest(BaseModel):
    text: str = ""
    audio_base64: str = ""
    image_list: list[str] = Field(default_factory=list)
    format: Literal["pcm", "wav"] = "pcm"
    target_voice: bool = False


# ---------------------------------------------------------------------------------------------
# the pool


@dataclass
class _Slot:
    streamer: MultiQueueStreamer
    voice: TargetVoiceStage | None


class StreamerPool:
    """A fixed number of streamers (and LLVC stages) over one set of weights; ``acquire()`` lends
    one for a request and takes it back afterwards, or raises ``TimeoutError`` when none frees up."""

    def __init__(self, stack: TTSStack, config: StreamConfig, size: int,
                 voice_factory: Callable[[], TargetVoiceStage] | None = None, stack_b: TTSStack | None = None):
        if size < 1:
            raise ValueError(f"pool size must be >= 1, got {size}")
        self.size = size
        self.stack, self.config = stack, config
        self._free: queue.Queue[_Slot] = queue.Queue()
        for _ in range(size):
            self._free.put(_Slot(MultiQueueStreamer(stack, config, stack_b=stack_b),
                                 voice_factory() if voice_factory else None))

        self.voice_rate = self._free.queue[0].voice.sample_rate if voice_factory else None

    @property
    def free(self) -> int:
        return self._free.qsize()

    @contextmanager
    def acquire(self, timeout: float) -> Iterator[_Slot]:
        try:
            slot = self._free.get(timeout=timeout)
        except queue.Empty:
            raise TimeoutError(f"all {self.size} replica pairs busy for {timeout} s") from None
        try:
            yield slot
        finally:
            if slot.voice is not None:
                slot.voice.reset()
            self._free.put(slot)


class _ReleasingResponse(StreamingResponse):
    """A StreamingResponse that always runs ``release`` when it ends: a client that disconnects
    leaves the body generator suspended, and its ``finally`` would wait for garbage collection."""

    def __init__(self, content: AsyncIterator[bytes], release: Callable, **kwargs: Any):
        super().__init__(content, **kwargs)
        self._release = release

    async def __call__(self, scope: dict, receive: Callable, send: Callable) -> None:
        try:
            await super().__call__(scope, receive, send)
        finally:
            await self._release()


class _TooLarge(HTTPException):
    """Raised while the body is read; an HTTPException so FastAPI's body parser passes it on as
    413 instead of wrapping it in a 400 "error parsing the body"."""


class BodyLimit:
    """ASGI middleware: 413 for a request body over ``max_bytes``, by its Content-Length header or,
    for a chunked upload, as soon as the bytes read so far exceed it (nothing more is buffered)."""

    def __init__(self, app: Any, max_bytes: int):
        self.app, self.max_bytes = app, max_bytes

    async def __call__(self, scope: dict, receive: Callable, send: Callable) -> None:
        if scope["type"] != "http":
            return await self.app(scope, receive, send)
        length = dict(scope["headers"]).get(b"content-length", b"")
        too_large = JSONResponse({"detail": f"request body exceeds {self.max_bytes} bytes"}, 413)
        if length.isdigit() and int(length) > self.max_bytes:
            return await too_large(scope, receive, send)
        seen = 0

        async def counted() -> dict:
            nonlocal seen
            message = await receive()
            if message["type"] == "http.request":
                seen += len(message.get("body", b""))
                if seen > self.max_bytes:
                    raise _TooLarge(413, f"request body exceeds {self.max_bytes} bytes")
            return message

        try:
            await self.app(scope, counted, send)
        except _TooLarge:
            await too_large(scope, receive, send)


def wav_stream_header(sample_rate: int) -> bytes:
    """A 32-bit IEEE-float mono WAV header whose RIFF/data sizes say "unknown" (0xFFFFFFFF), the
    usual convention for a WAV stream of unknown length."""
    fmt = struct.pack("<HHIIHH", 3, 1, sample_rate, sample_rate * 4, 4, 32)
    return b"RIFF" + struct.pack("<I", 0xFFFFFFFF) + b"WAVE" + b"fmt " + struct.pack("<I", len(fmt)) + fmt + \
        b"data" + struct.pack("<I", 0xFFFFFFFF)


def _pcm(audio: np.ndarray) -> bytes:
    return np.ascontiguousarray(audio, dtype="<f4").tobytes()


# ---------------------------------------------------------------------------------------------
# the app


def create_app(pool: StreamerPool, config: ServerConfig | None = None, chat_source: TextSource | None = None,
               transcriber: Callable[[np.ndarray, int, str], str] | None = None,
               vision_source: Any = None) -> FastAPI:
    """The FastAPI app. ``chat_source``: the LLM answering /voicechat and WebSocket prompts (None:
    the transcript/prompt is spoken as is, and ``GET /`` says so); ``transcriber(wav, sr,
    language) -> text`` for /voicechat; ``vision_source``: a
    :class:`~vxlib.llmvox.sources.VisionChatSource` enabling the image endpoints."""
    config = config or ServerConfig()
    app = FastAPI(title="vxlib streaming TTS", version="1")
    direct = ScriptedSource(words_per_s=None)  # /tts: the whole text is there at once
    tts_rate, voice_rate = pool.stack.sample_rate, pool.voice_rate

    app.add_middleware(BodyLimit, max_bytes=config.max_body_bytes)

    def check_text(text: str) -> None:
        if len(text) > config.max_text_chars:
            raise HTTPException(413, f"text of {len(text)} characters exceeds {config.max_text_chars}")
        if not text.strip():
            raise HTTPException(422, "text is empty")

    def decode_audio(b64: str) -> np.ndarray:
        try:
            raw = base64.b64decode(b64, validate=True)
        except (binascii.Error, ValueError) as err:
            raise HTTPException(422, f"audio_base64 is not valid base64: {err}") from err
        if len(raw) % 2:
            raise HTTPException(422, f"audio_base64 holds {len(raw)} bytes: not whole int16 samples")
        if len(raw) == 0:
            raise HTTPException(422, "audio_base64 is empty")
        if len(raw) / 2 / VOICE_INPUT_RATE > config.max_audio_s:
            raise HTTPException(413, f"audio of {len(raw) / 2 / VOICE_INPUT_RATE:.1f} s exceeds {config.max_audio_s} s")
        return np.frombuffer(raw, dtype="<i2").astype(np.float32) / 32768.0

    def pieces_for(prompt: str, chat: bool, token: CancelToken, images: list | None = None) -> Iterator[str]:
        if images is not None:
            return vision_source.pieces(prompt, token, images=images)
        if chat and chat_source is not None:
            return chat_source.pieces(prompt, token)
        return direct.pieces(prompt, token)

    def speech_response(request: Request, prompt: str, fmt: str, target_voice: bool, chat: bool,
                        images: list | None = None) -> StreamingResponse:
        if target_voice and voice_rate is None:
            raise HTTPException(422, "target_voice requested but no LLVC model is loaded (--llvc_checkpoint)")
        rate = voice_rate if target_voice else tts_rate
        media = "audio/wav" if fmt == "wav" else "application/octet-stream"
        # entered by hand: the slot must outlive this handler and is released when the response ends
        cm = pool.acquire(config.acquire_timeout_s)
        try:
            slot = cm.__enter__()
        except TimeoutError as err:
            raise HTTPException(503, str(err)) from err

        token = CancelToken()
        state: dict[str, Any] = {"stream": None, "released": False}

        async def release() -> None:  # idempotent: from the body's finally or the response's
            token.cancel("response finished or client gone")
            if state["stream"] is not None:
                await run_in_threadpool(state["stream"].close)
            if not state["released"]:
                state["released"] = True
                cm.__exit__(None, None, None)

        async def body() -> AsyncIterator[bytes]:
            try:
                if fmt == "wav":
                    yield wav_stream_header(rate)
                stream = state["stream"] = slot.streamer.stream(pieces_for(prompt, chat, token, images), token)
                it = iter(slot.voice.convert(stream) if target_voice else stream)
                while True:
                    chunk = await run_in_threadpool(next, it, None)
                    if chunk is None:
                        break
                    if await request.is_disconnected():  # uvicorn drops writes to a gone client silently
                        break
                    if chunk.audio.size:
                        yield _pcm(chunk.audio)
            finally:
                await release()

        return _ReleasingResponse(body(), release, media_type=media, headers={"X-Sample-Rate": str(rate)})

    @app.get("/")
    def info() -> dict[str, Any]:
        return {
            "service": "vxlib streaming TTS (LLMVoX multi-queue)",
            "model": pool.stack.label,
            "codec": type(pool.stack.codec).__name__,
            "sample_rate": tts_rate,
            "target_voice_sample_rate": voice_rate,
            "chat_type": config.chat_type,
            "llm": getattr(chat_source, "label", type(chat_source).__name__) if chat_source is not None
            else "none: /voicechat and WebSocket prompts are spoken as given (no LLM loaded)",
            "asr": transcriber is not None,
            "pool_size": pool.size,
            "pool_free": pool.free,
            "stream": asdict(pool.config),
            "limits": asdict(config),
            "endpoints": ["GET /", "POST /tts", "POST /voicechat", "WS /ws"]
            + (["POST /vlmschat", "POST /multimodalchat"] if vision_source is not None else []),
        }

    @app.post("/tts")
    def tts(req: TTSRequest, request: Request) -> StreamingResponse:
        check_text(req.text)
        return speech_response(request, req.text, req.format, req.target_voice, chat=False)

    @app.post("/voicechat")
    async def voicechat(req: VoiceChatRequest, request: Request) -> StreamingResponse:
        if transcriber is None:
            raise HTTPException(501, "no ASR model loaded (start with --chat_type voice)")
        wav = decode_audio(req.audio_base64)
        text = await run_in_threadpool(transcriber, wav, VOICE_INPUT_RATE, req.source_language)
        if not text.strip():
            raise HTTPException(422, "no speech recognised in audio_base64")
        # acquiring a replica pair may wait: off the event loop
        return await run_in_threadpool(speech_response, request, text, req.format, req.target_voice, True)

    if vision_source is not None:
        def decode_image(b64: str):
            from io import BytesIO

            from PIL import Image

            try:
                return Image.open(BytesIO(base64.b64decode(b64, validate=True))).convert("RGB")
            except Exception as err:
                raise HTTPException(422, f"image is not a readable base64 image: {err}") from err

        @app.post("/vlmschat")
        def vlmschat(req: VisionChatRequest, request: Request) -> StreamingResponse:
            check_text(req.text)
            return speech_response(request, req.text, req.format, req.target_voice, chat=True, images=[decode_image(req.image_base64)])

        @app.post("/multimodalchat")
        async def multimodalchat(req: MultimodalChatRequest, request: Request) -> StreamingResponse:
            if len(req.image_list) > config.max_images:
                raise HTTPException(413, f"{len(req.image_list)} images exceed {config.max_images}")
            text = req.text
            if req.audio_base64:
                if transcriber is None:
                    raise HTTPException(501, "audio given but no ASR model loaded")
                text = (text + " " + await run_in_threadpool(transcriber, decode_audio(req.audio_base64), VOICE_INPUT_RATE, "en")).strip()
            check_text(text)
            images = [decode_image(b) for b in req.image_list]
            return await run_in_threadpool(speech_response, request, text, req.format, req.target_voice, True, images)

    @app.websocket("/ws")
    async def ws(socket: WebSocket) -> None:
        await socket.accept()
        try:
            raw = await socket.receive_text()
            if len(raw) > config.max_body_bytes:
                await socket.send_json({"type": "error", "status": 413, "detail": "message too large"})
                return
            try:
                msg = json.loads(raw)
                chat = "prompt" in msg
                prompt = msg["prompt"] if chat else msg["text"]
                target_voice = bool(msg.get("target_voice", False))
                if not isinstance(prompt, str):
                    raise TypeError("text/prompt must be a string")
                check_text(prompt)
                if target_voice and voice_rate is None:
                    raise HTTPException(422, "target_voice requested but no LLVC model is loaded")
            except HTTPException as err:
                await socket.send_json({"type": "error", "status": err.status_code, "detail": err.detail})
                return
            except (ValueError, KeyError, TypeError) as err:
                await socket.send_json({"type": "error", "status": 422, "detail": f"expected {{\"text\": str}} or {{\"prompt\": str}}: {err!r}"})
                return
            await _ws_stream(socket, prompt, chat, target_voice)
        except WebSocketDisconnect:
            pass
        finally:
            try:
                await socket.close()
            except RuntimeError:
                pass  # already closed by the client

    async def _ws_stream(socket: WebSocket, prompt: str, chat: bool, target_voice: bool) -> None:
        try:
            cm = pool.acquire(config.acquire_timeout_s)
            slot = await run_in_threadpool(cm.__enter__)
        except TimeoutError as err:
            await socket.send_json({"type": "error", "status": 503, "detail": str(err)})
            return
        token = CancelToken()
        stream = None
        try:
            rate = voice_rate if target_voice else tts_rate
            await socket.send_json({"type": "start", "sample_rate": rate})
            stream = slot.streamer.stream(pieces_for(prompt, chat, token), token)
            it = iter(slot.voice.convert(stream) if target_voice else stream)
            while True:
                chunk: SpeechChunk | None = await run_in_threadpool(next, it, None)
                if chunk is None:
                    break
                await socket.send_json({"type": "chunk", "index": chunk.index, "sentence": chunk.sentence,
                                        "replica": chunk.replica, "samples": int(chunk.audio.size),
                                        "first_sample": chunk.first_sample})
                await socket.send_bytes(_pcm(chunk.audio))
            ttfa = stream.time_to_first_audio
            await socket.send_json({"type": "end", "chunks": len(stream.chunks), "sentences": stream.sentences,
                                    "time_to_first_audio_ms": None if ttfa is None else 1e3 * ttfa})
        finally:
            token.cancel("websocket finished or client gone")
            if stream is not None:
                await run_in_threadpool(stream.close)
            cm.__exit__(None, None, None)

    app.state.pool = pool
    return app

