"""Streaming TTS server (FastAPI + WebSocket) and its Python client.

``python -m vxlib.serve --help`` starts it (127.0.0.1 by default); :mod:`vxlib.serve.app` builds the
app, :mod:`vxlib.serve.client` talks to it.
"""

from vxlib.serve.app import ServerConfig, StreamerPool, create_app
from vxlib.serve.client import TTSClient

__all__ = ["ServerConfig", "StreamerPool", "create_app", "TTSClient"]
