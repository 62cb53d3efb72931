"""The server on a loopback port: endpoints, streaming formats, the WebSocket, limits and errors,
sequential and concurrent load with each client getting exactly its own audio, thread hygiene."""

from __future__ import annotations

import base64
import json
import struct
import threading
from concurrent.futures import ThreadPoolExecutor

import httpx
import numpy as np
import pytest

from tests.serve.conftest import HEARD, LIMITS

TEXT = "Hello from the server. Second sentence!"


def stream_threads() -> list[str]:
    return [t.name for t in threading.enumerate() if t.name.startswith("llmvox-stream")]


def test_info_says_what_is_loaded(server):
    client, pool = server
    info = client.info()
    assert "UNTRAINED" in info["model"] and info["sample_rate"] == 24000
    assert info["pool_size"] == pool.size == 2 and info["limits"]["max_text_chars"] == LIMITS.max_text_chars
    assert info["llm"].startswith("none") and "POST /vlmschat" not in info["endpoints"]


def test_tts_streams_exactly_the_in_process_audio(server, reference):
    client, _ = server
    got = client.tts(TEXT)
    assert got.sample_rate == 24000 and len(got.chunks) >= 1
    np.testing.assert_array_equal(got.audio, reference(TEXT))


def test_wav_framing(server, reference):
    client, _ = server
    r = httpx.post(client.base + "/tts", json={"text": TEXT, "format": "wav"}, timeout=60)
    assert r.status_code == 200 and r.headers["content-type"] == "audio/wav"
    body = r.content
    assert body[:4] == b"RIFF" and body[8:12] == b"WAVE" and body[36:40] == b"data"
    fmt_tag, channels, rate = struct.unpack("<HHI", body[20:28])
    assert (fmt_tag, channels, rate) == (3, 1, 24000)  # IEEE float, mono
    np.testing.assert_array_equal(np.frombuffer(body[44:], "<f4"), reference(TEXT))


def test_websocket_streams_chunks_with_headers(server, reference):
    client, _ = server
    got = client.ws_tts(TEXT)
    end = got.meta[-1]
    assert end["type"] == "end" and end["chunks"] == len(got.chunks) and end["sentences"] == ["Hello from the server.", "Second sentence!"]
    assert [m["sentence"] for m in got.meta[:-1]] == sorted(m["sentence"] for m in got.meta[:-1])
    assert [m["samples"] for m in got.meta[:-1]] == [c.size for c in got.chunks]
    np.testing.assert_array_equal(got.audio, reference(TEXT))


def test_voicechat_transcribes_then_speaks(server, reference):
    client, _ = server
    got = client.voicechat(np.zeros(8000, np.float32))  # the ASR double "hears" HEARD
    np.testing.assert_array_equal(got.audio, reference(HEARD))


@pytest.mark.parametrize("body, status", [
    (b"{not json", 422),
    (json.dumps({"txt": "missing field"}).encode(), 422),
    (json.dumps({"text": ""}).encode(), 422),
    (json.dumps({"text": "x", "format": "mp3"}).encode(), 422),
    (json.dumps({"text": "a" * (LIMITS.max_text_chars + 1)}).encode(), 413),
    (json.dumps({"text": "a" * (LIMITS.max_body_bytes + 10)}).encode(), 413),
])
def test_bad_requests_get_4xx(server, body, status):
    client, _ = server
    r = httpx.post(client.base + "/tts", content=body, headers={"content-type": "application/json"}, timeout=30)
    assert r.status_code == status, r.text


def test_voicechat_rejects_bad_audio(server):
    client, _ = server
    url = client.base + "/voicechat"
    assert httpx.post(url, json={"audio_base64": "***"}, timeout=30).status_code == 422
    odd = base64.b64encode(b"\x00\x01\x02").decode()
    assert httpx.post(url, json={"audio_base64": odd}, timeout=30).status_code == 422
    too_long = base64.b64encode(bytes(2 * 16000 * 3)).decode()  # 3 s > max_audio_s
    assert httpx.post(url, json={"audio_base64": too_long}, timeout=30).status_code == 413


def test_target_voice_without_llvc_is_a_clear_422(server):
    client, _ = server
    r = httpx.post(client.base + "/tts", json={"text": "Hi.", "target_voice": True}, timeout=30)
    assert r.status_code == 422 and "LLVC" in r.text


def test_websocket_bad_message_gets_an_error(server):
    from websockets.sync.client import connect

    client, _ = server
    with connect(client.ws_url) as ws:
        ws.send("{broken")
        msg = json.loads(ws.recv(timeout=30))
    assert msg["type"] == "error" and msg["status"] == 422


def test_100_sequential_requests_keep_the_thread_count(server):
    client, pool = server
    for _ in range(10):  # warm-up: the server's thread pool grows to its working size
        client.tts("Hi.")
    before = threading.active_count()
    for i in range(100):
        assert client.tts(f"Request {i}.").audio.size > 0
    assert stream_threads() == [] and threading.active_count() <= before
    assert pool.free == pool.size


def test_8_concurrent_clients_each_get_their_own_audio(server, reference):
    client, pool = server
    texts = [f"Client number {i} speaks{'.' * (i % 3 + 1)} Then it stops." for i in range(8)]
    expected = [reference(t) for t in texts]
    before = threading.active_count()

    def run(i: int) -> np.ndarray:
        return (client.ws_tts(texts[i]) if i % 2 else client.tts(texts[i])).audio

    with ThreadPoolExecutor(8) as ex:
        got = list(ex.map(run, range(8)))
    for g, e in zip(got, expected):
        np.testing.assert_array_equal(g, e)
    assert stream_threads() == [] and pool.free == pool.size
    assert threading.active_count() <= before + 8  # the executor's own threads at most, none of the server's


def test_a_client_leaving_mid_stream_frees_its_replicas(server):
    client, pool = server
    with httpx.stream("POST", client.base + "/tts", json={"text": "Long text. " * 40}, timeout=60) as r:
        next(r.iter_bytes())  # first audio arrived, then hang up
    for _ in range(200):  # the server notices on its next write
        if pool.free == pool.size and not stream_threads():
            break
        threading.Event().wait(0.05)
    assert pool.free == pool.size and stream_threads() == []


def test_chunked_upload_over_the_limit_gets_413(server):
    client, _ = server

    def body():  # no Content-Length: the server must count while reading
        for _ in range(LIMITS.max_body_bytes // 1024 + 2):
            yield b" " * 1024

    r = httpx.post(client.base + "/tts", content=body(), headers={"content-type": "application/json"}, timeout=30)
    assert r.status_code == 413
