"""A small Python client for :mod:`vxlib.serve`: HTTP streaming and WebSocket, chunks as numpy."""

from __future__ import annotations

import base64
import json
from dataclasses import dataclass, field
from typing import Any, Iterator

import numpy as np

__all__ = ["TTSClient", "StreamedSpeech"]


@dataclass
class StreamedSpeech:
    """What a request returned: the chunks as they arrived and the server's notes."""

    sample_rate: int
    chunks: list[np.ndarray] = field(default_factory=list)
    meta: list[dict[str, Any]] = field(default_factory=list)  # WebSocket chunk headers, then the end message

    @property
    def audio(self) -> np.ndarray:
        return np.concatenate(self.chunks) if self.chunks else np.zeros(0, np.float32)


class TTSClient:
    """``TTSClient(host, port)``: ``info()``, ``tts(text)``, ``voicechat(wav_16k)``, ``ws_tts(text)``.
    HTTP methods yield float32 blocks as the bytes arrive (``stream_*``) or collect them."""

    def __init__(self, host: str = "127.0.0.1", port: int = 5003, timeout: float = 60.0):
        self.base = f"http://{host}:{port}"
        self.ws_url = f"ws://{host}:{port}/ws"
        self.timeout = timeout

    def info(self) -> dict[str, Any]:
        import httpx

        r = httpx.get(self.base + "/", timeout=self.timeout)
        r.raise_for_status()
        return r.json()

    def stream_post(self, path: str, payload: dict[str, Any]) -> Iterator[tuple[int, np.ndarray]]:
        """POST and yield ``(sample_rate, float32 block)`` as the response streams in (raw PCM)."""
        import httpx

        with httpx.stream("POST", self.base + path, json={**payload, "format": "pcm"}, timeout=self.timeout) as r:
            if r.status_code != 200:
                r.read()
                raise RuntimeError(f"{path}: HTTP {r.status_code}: {r.text}")
            sr = int(r.headers["x-sample-rate"])
            carry = b""
            for data in r.iter_bytes():
                data = carry + data
                whole = len(data) - len(data) % 4  # a float32 may straddle two network reads
                carry = data[whole:]
                if whole:
                    yield sr, np.frombuffer(data[:whole], dtype="<f4").copy()

    def _collect(self, path: str, payload: dict[str, Any]) -> StreamedSpeech:
        out: StreamedSpeech | None = None
        for sr, block in self.stream_post(path, payload):
            out = out or StreamedSpeech(sr)
            out.chunks.append(block)
        return out or StreamedSpeech(0)

    def tts(self, text: str, target_voice: bool = False) -> StreamedSpeech:
        return self._collect("/tts", {"text": text, "target_voice": target_voice})

    def voicechat(self, wav_16k: np.ndarray, source_language: str = "en", target_language: str = "en",
                  target_voice: bool = False) -> StreamedSpeech:
        pcm = (np.clip(np.asarray(wav_16k, np.float32), -1, 1) * 32767).astype("<i2").tobytes()
        return self._collect("/voicechat", {"audio_base64": base64.b64encode(pcm).decode(), "source_language": source_language,
                                            "target_language": target_language, "target_voice": target_voice})

    def ws_stream(self, text: str, chat: bool = False, target_voice: bool = False) -> Iterator[tuple[dict[str, Any], np.ndarray | None]]:
        """Yield ``(header, audio)`` per chunk over the WebSocket, then ``(end message, None)``."""
        from websockets.sync.client import connect

        with connect(self.ws_url, open_timeout=self.timeout, max_size=None) as ws:
            ws.send(json.dumps({"prompt" if chat else "text": text, "target_voice": target_voice}))
            start = json.loads(ws.recv(timeout=self.timeout))
            if start.get("type") == "error":
                raise RuntimeError(f"WebSocket error {start.get('status')}: {start.get('detail')}")
            header = None
            while True:
                msg = ws.recv(timeout=self.timeout)
                if isinstance(msg, bytes):
                    yield {**header, "sample_rate": start["sample_rate"]}, np.frombuffer(msg, dtype="<f4").copy()
                    continue
                header = json.loads(msg)
                if header["type"] == "error":
                    raise RuntimeError(f"WebSocket error {header.get('status')}: {header.get('detail')}")
                if header["type"] == "end":
                    yield header, None
                    return

    def ws_tts(self, text: str, chat: bool = False, target_voice: bool = False) -> StreamedSpeech:
        out = None
        for header, audio in self.ws_stream(text, chat, target_voice):
            if audio is None:
                out = out or StreamedSpeech(0)
                out.meta.append(header)
                break
            out = out or StreamedSpeech(header["sample_rate"])
            out.chunks.append(audio)
            out.meta.append(header)
        return out
