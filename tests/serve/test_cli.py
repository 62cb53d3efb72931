"""``python -m vxlib.serve`` flags: the reference's names parse, and build a working app."""

from __future__ import annotations

import numpy as np
import pytest
from starlette.testclient import TestClient

from vxlib.codec.world_codec import WorldCodec, WorldCodecConfig
from vxlib.serve.__main__ import build_app, build_parser


@pytest.fixture(scope="module")
def world_dir(tmp_path_factory):
    t = np.arange(48000) / 24000
    x = (0.3 * sum(np.sin(2 * np.pi * k * 130 * t) / k for k in range(1, 20))).astype(np.float32)
    d = tmp_path_factory.mktemp("codec")
    WorldCodec.fit([x], WorldCodecConfig(codebook_size=16, feature_dim=64, kmeans_iters=3, kmeans_seed_frames=100)).save(d)
    return d


def test_reference_flags_parse_with_reference_defaults():
    a = build_parser().parse_args([])
    assert (a.api_port, a.initial_dump_size_1, a.initial_dump_size_2, a.max_dump_size) == (5003, 10, 160, 1280)
    assert a.host == "127.0.0.1" and a.chat_type == "text" and a.eos_token == "<|eot_id|>"


def test_cli_builds_a_serving_app(world_dir):
    a = build_parser().parse_args(["--codec", "world", "--codec_dir", str(world_dir), "--pool_size", "1",
                                   "--initial_dump_size_1", "4", "--max_pad_tokens", "5"])
    with TestClient(build_app(a)) as client:
        info = client.get("/").json()
        assert "UNTRAINED" in info["model"] and info["codec"] == "WorldCodec" and info["stream"]["initial_dump_size_1"] == 4
        r = client.post("/tts", json={"text": "Hi."})
        assert r.status_code == 200 and len(r.content) > 0 and len(r.content) % 4 == 0


def test_random_model_without_a_codec_is_refused():
    with pytest.raises(ValueError, match="codec"):
        build_app(build_parser().parse_args([]))


@pytest.mark.slow
def test_whisper_transcriber_hears_espeak(tmp_path):
    """The /voicechat ASR wrapper with the packaged Whisper tiny.en on an espeak-ng utterance."""
    import subprocess

    from vxlib import audio
    from vxlib.serve.__main__ import whisper_transcriber

    wav_path = tmp_path / "hello.wav"
    subprocess.run(["espeak-ng", "-w", str(wav_path), "Hello world, this is a test."], check=True)
    wav, sr = audio.load(wav_path, sr=16000)
    text = whisper_transcriber(None)(wav, sr, "en").lower()
    assert "hello" in text and "test" in text
