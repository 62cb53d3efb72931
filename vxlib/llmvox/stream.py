"""Streaming LLMVoX: text pieces in, speech chunks out, while the text is still being written.

The multi-queue algorithm of the reference server (mbzuai-oryx/LLMVoX ``streaming_server.py``,
facts in ``shared/spec/llmvox.md``), rebuilt on :mod:`vxlib.stream`::

    source ──pieces──> producer ──sentence 0, 2, 4 ...──> replica A ─┐
                       (split at .?!\\n)                              ├─ chunks, in sentence order ─> consumer
                                   ──sentence 1, 3, 5 ...──> replica B ─┘

- Text pieces are split into sentences; sentences alternate between two replicas (two
  :class:`~vxlib.llmvox.model.SpeechGenerator` s sharing one set of weights), so one replica speaks
  sentence k+1 while sentence k is still being decoded or played.
- A replica feeds one text id per step (bytes as they arrive, ``</s>`` after each word, ``EOS`` at
  the sentence end, then ``PAD`` until the model says end-of-audio), and starts every sentence
  from an empty KV cache.
- Audio is flushed in chunks whose size follows the reference's dump-size schedule
  (:class:`DumpSchedule`: ``initial x growth^k``, capped), carried across sentences per replica.
- Chunks are decoded by :class:`SeamlessDecoder` (left context + look-ahead + crossfade) instead of
  the reference's context-free per-chunk decoding, whose seams are audible.

Reference defects fixed here: consumer threads that never exit (every thread here is joined when a
request ends or is cancelled, :class:`~vxlib.stream.workers.WorkerGroup`); ``None`` yielded into the
audio stream at the end; the end-of-audio code decoded as audio; sentence switching on "." only.
"""

from __future__ import annotations

import collections
import math
import os
import re
import threading
from dataclasses import dataclass, field, replace
from typing import Any, Iterator, Sequence

import numpy as np
import torch

from vxlib.codec.base import AudioCodec
from vxlib.llmvox.model import EOA_CODE, GPT, GPTConfig, InputEmbedder, SpeechGenerator, load_checkpoint, quantize_int8
from vxlib.llmvox.text import EOS_ID, PAD_ID, WORD_END_ID, default_byte_embedding
from vxlib.stream.timing import ChunkTiming, Clock, MonotonicClock
from vxlib.stream.workers import CancelToken, Cancelled, Closed, ClosableQueue, WorkerGroup, intra_op_threads

__all__ = [
    "StreamConfig",
    "DumpSchedule",
    "SentenceSplitter",
    "clean_text",
    "text_ids",
    "SeamlessDecoder",
    "seam_snr_db",
    "SpeechChunk",
    "Replica",
    "TTSStack",
    "build_codec",
    "MultiQueueStreamer",
    "SpeechStream",
]

BYTE_OFFSET = 3  # ByT5: byte b has id b + 3 (0, 1, 2 are <pad>, </s>, <unk>)


# ---------------------------------------------------------------------------------------------
# text


_CLEANUPS = (("#", " number "), ("&", " and "), ("*", ""), ("`", ""))  # the reference's, plus markdown marks
_SPACES = re.compile(r"[ \t]+")


def clean_text(piece: str) -> str:
    """Make an LLM text piece speakable, as the reference does (``#`` -> "number", ``&`` -> "and"),
    also dropping markdown emphasis marks. Runs of spaces/tabs collapse to one space."""
    for old, new in _CLEANUPS:
        piece = piece.replace(old, new)
    return _SPACES.sub(" ", piece)


def text_ids(text: str, word_open: bool = False) -> tuple[list[int], bool]:
    """Byte-level ids of a streamed text piece: byte ``b`` -> ``b + 3``, a space ends a word (``</s>``).

    ``word_open`` says whether a word is already open (its bytes were fed, its ``</s>`` not yet);
    returns ``(ids, word_open_after)``. Concatenated over a sentence's pieces and closed by
    :meth:`end_ids`, this equals :func:`vxlib.llmvox.text.encode_text` of the sentence, except that
    literal special-token strings in the text (``EOS``, ``[PAD]``, ``</s>`` ...) stay plain bytes:
    user text cannot inject control ids (the reference tokenizer turns them into specials).
    """
    ids: list[int] = []
    for ch in text:
        if ch == " ":
            ids.append(WORD_END_ID)
            word_open = False
        else:
            ids.extend(b + BYTE_OFFSET for b in ch.encode("utf-8"))
            word_open = True
    return ids, word_open


def end_ids(word_open: bool) -> list[int]:
    """Ids closing a sentence: ``</s>`` for a word still open, then ``EOS``."""
    return ([WORD_END_ID] if word_open else []) + [EOS_ID]


class SentenceSplitter:
    """Splits a stream of text pieces into sentences.

    A sentence ends after one of ``ends`` when the next character is whitespace or the piece ends
    there (an LLM piece that ends in "." is a sentence end, as in the reference, which knows only
    "."); a newline always ends one. ``3.5`` or ``e.g.x`` inside a piece do not split. Leading
    whitespace of a sentence is dropped.
    ``feed(piece) -> [(text, ends_sentence)]``.
    """

    def __init__(self, ends: str = ".?!\n"):
        if not ends:
            raise ValueError("need at least one sentence-end character")
        self.ends = ends
        self._at_start = True

    def feed(self, piece: str) -> list[tuple[str, bool]]:
        out: list[tuple[str, bool]] = []
        start = 0
        for i, ch in enumerate(piece):
            if ch in self.ends and (ch == "\n" or i + 1 == len(piece) or piece[i + 1].isspace()):
                out.append((piece[start:i + 1], True))
                start = i + 1
        if start < len(piece):
            out.append((piece[start:], False))
        result = []
        for text, ends in out:
            if ends and text.endswith("\n"):
                text = text[:-1]
            text = text.replace("\n", " ")  # only reached when "\n" is not a sentence end
            if self._at_start:
                text = text.lstrip()
            if text or ends:
                result.append((text, ends))
                self._at_start = ends
        return result


@dataclass
class DumpSchedule:
    """Chunk sizes in tokens: ``initial``, then ``x growth`` after every flush, capped at ``maximum``
    (reference: 10 -> 30 -> 90 -> 270 -> 810 -> 1280). Carried across sentences by its replica."""

    initial: int
    maximum: int = 1280
    growth: int = 3
    current: int = field(init=False)

    def __post_init__(self):
        if not 1 <= self.initial <= self.maximum or self.growth < 1:
            raise ValueError(f"need 1 <= initial <= maximum and growth >= 1, got {self.initial}, {self.maximum}, {self.growth}")
        self.current = self.initial

    def advance(self) -> None:
        self.current = min(self.current * self.growth, self.maximum)

    def reset(self) -> None:
        self.current = self.initial

    def sizes(self, n: int) -> list[int]:
        """The next ``n`` sizes from the start (does not move this schedule)."""
        s, out = replace(self), []
        s.reset()
        for _ in range(n):
            out.append(s.current)
            s.advance()
        return out


@dataclass
class StreamConfig:
    """Streaming parameters. Dump sizes and growth are the reference's (``--initial_dump_size_1/2``,
    ``--max_dump_size``); the decoder settings are vxlib's (see :class:`SeamlessDecoder`)."""

    initial_dump_size_1: int = 10  # replica A speaks first: a small first chunk is the first audio
    initial_dump_size_2: int = 160  # replica B's sentence plays later, so it can afford big chunks
    max_dump_size: int = 1280
    dump_growth: int = 3
    sentence_ends: str = ".?!\n"
    max_tokens_per_sentence: int = 8000  # the reference's cap (~107 s); also capped by the cache
    max_pad_tokens: int | None = None  # PAD steps allowed after the text (None: up to the cap above)
    left_context: int | None = None  # decode context in tokens (None: from the sentence start, see SeamlessDecoder)
    # tokens held back per flush so the decoder sees right context; None: what the codec needs to
    # reproduce its whole decode (WorldCodec: lookahead_samples + crossfade, 7 tokens with its
    # defaults), 4 for codecs without a bound (WavTokenizer)
    lookahead: int | None = None
    crossfade: int = 320  # samples blended across each seam (<= lookahead * hop)
    temperature: float = 0.0  # 0: greedy, as the reference
    # "fp32" (the reference) or "int8": the GPT's linears dynamically quantised for CPU decoding
    # (vxlib.llmvox.model.quantize_int8; ~2.5x faster steps here, logits within a few % of fp32)
    gpt_precision: str = "fp32"
    # "fp32" or "int8": the codec's decoder with int8 weights where it has one (WavTokenizer:
    # WavTokenizer.int8_decoder, ~3x faster on short chunks here; a different waveform, ~33 dB
    # from the fp32 decoder's with random weights)
    decoder_precision: str = "fp32"
    # replica B starts its sentence only once the request's first chunk is out: on a CPU the two
    # replicas share the cores, and B's sentence plays after A's anyway (off: both start at once,
    # as the reference does with one GPU per replica)
    first_audio_priority: bool = True
    # intra-op CPU threads of each replica's thread (0: half the machine's cores, at least 1). Each
    # Python thread that runs torch ops gets its own OpenMP team; two replicas with a team as large
    # as the machine oversubscribe the cores and their spinning workers slow each other down
    # (measured: an int8 GPT step 2.1 ms on the main thread, 5-8 ms in a second thread with 2
    # threads each, 3.1-3.4 ms with one). The caller's and the process's settings are restored.
    replica_threads: int = 0

    def __post_init__(self):
        if self.replica_threads < 0:
            raise ValueError(f"replica_threads must be >= 0 (0: automatic), got {self.replica_threads}")
        for name in ("gpt_precision", "decoder_precision"):
            if getattr(self, name) not in ("fp32", "int8"):
                raise ValueError(f"{name} must be 'fp32' or 'int8', got {getattr(self, name)!r}")

    def schedule(self, replica: int) -> DumpSchedule:
        first = (self.initial_dump_size_1, self.initial_dump_size_2)[replica]
        return DumpSchedule(first, self.max_dump_size, self.dump_growth)


# ---------------------------------------------------------------------------------------------
# seam-free chunk decoding


UNBOUNDED_CODEC_LOOKAHEAD = 4  # tokens held back for a non-causal decoder (WavTokenizer): seams measured in docs/llmvox.md


def default_lookahead(codec: AudioCodec, crossfade: int) -> int:
    """Tokens a :class:`SeamlessDecoder` holds back by default: for a codec with a bounded
    :attr:`~vxlib.codec.base.AudioCodec.lookahead_samples`, enough that the emitted samples and the
    crossfade tail after them no longer change (chunks then equal the whole decode);
    :data:`UNBOUNDED_CODEC_LOOKAHEAD` otherwise."""
    bound = codec.lookahead_samples
    if bound is None:
        return max(UNBOUNDED_CODEC_LOOKAHEAD, math.ceil(crossfade / codec.hop_length))
    return math.ceil((bound + crossfade) / codec.hop_length)


class SeamlessDecoder:
    """Decodes a growing code sequence chunk by chunk so that the concatenated chunks match one
    decode of the whole sequence.

    WavTokenizer's decoder is non-causal (convolutions on both sides, full self-attention and
    GroupNorm over the whole input), so the reference, which decodes each chunk alone, produces a
    different waveform at every chunk edge: an audible click. Here each flush decodes the window
    ``[emitted - left_context, N)`` (left context: the samples already played are re-synthesised, so
    the new ones continue them), emits up to ``N - lookahead`` tokens (the held-back tokens give the
    emitted edge some right context), and blends the first ``crossfade`` samples with the previous
    window's decode of the same samples (raised-cosine, equal-gain: the two decodes are nearly
    identical there, so amplitudes add, not powers). The last flush (``final=True``) emits all.
    ``left_context=None`` decodes from the start every time: exact for codecs with unbounded
    memory such as WORLD synthesis (its pulse phase runs from the first frame), and as good as any
    window for WavTokenizer, whose GroupNorms and attention see the whole input. It is affordable
    because chunk sizes grow geometrically: with growth g the decoded tokens add up to at most
    g / (g - 1) times the sentence (1.5x for the reference's x3) until the cap is reached.

    ``push(codes)``, ``pull(final) -> (samples,)`` float32, ``reset()`` per utterance.
    """

    def __init__(self, codec: AudioCodec, left_context: int | None = 32, lookahead: int | None = None, crossfade: int = 320):
        if lookahead is None:
            lookahead = default_lookahead(codec, crossfade)
        if left_context is not None and left_context < 0 or lookahead < 0 or crossfade < 0:
            raise ValueError(f"need left_context, lookahead, crossfade >= 0, got {left_context}, {lookahead}, {crossfade}")
        if crossfade > lookahead * codec.hop_length:
            raise ValueError(f"crossfade {crossfade} samples needs lookahead >= {math.ceil(crossfade / codec.hop_length)} "
                             f"tokens (the blended samples come from the held-back tokens), got {lookahead}")
        self.codec, self.left_context, self.lookahead, self.crossfade = codec, left_context, lookahead, crossfade
        self.hop = codec.hop_length
        t = (np.arange(crossfade, dtype=np.float64) + 0.5) / max(crossfade, 1)
        self._fade_in = (0.5 - 0.5 * np.cos(np.pi * t)).astype(np.float32)
        self.reset()

    def reset(self) -> None:
        self.codes: list[int] = []
        self.emitted = 0  # samples handed out
        self._tail = np.zeros(0, np.float32)  # previous decode of samples [emitted, emitted + crossfade)

    @property
    def pending_tokens(self) -> int:
        """Generated tokens whose audio has not been emitted yet."""
        return len(self.codes) - self.emitted // self.hop

    def push(self, codes: int | Sequence[int]) -> None:
        if isinstance(codes, (int, np.integer)):
            self.codes.append(int(codes))
        else:
            self.codes.extend(int(c) for c in codes)

    def pull(self, final: bool = False) -> np.ndarray:
        n = len(self.codes)
        stop_token = n if final else n - self.lookahead
        if stop_token * self.hop <= self.emitted:
            if final:  # nothing new; a held tail (none exists when emitted reaches the end) is dropped
                self._tail = np.zeros(0, np.float32)
            return np.zeros(0, np.float32)
        first_token = self.emitted // self.hop
        start = 0 if self.left_context is None else max(0, first_token - self.left_context)
        with torch.inference_mode():
            y = self.codec.decode(torch.tensor(self.codes[start:n], dtype=torch.long))[0].cpu().numpy()  # ((n - start) * hop,)
        offset = start * self.hop  # absolute sample index of y[0]
        stop = stop_token * self.hop
        out = y[self.emitted - offset:stop - offset].astype(np.float32, copy=True)
        k = min(self._tail.shape[0], out.shape[0])
        if k:
            w = self._fade_in[:k]
            out[:k] = self._tail[:k] * (1.0 - w) + out[:k] * w
        self._tail = y[stop - offset:stop - offset + self.crossfade].astype(np.float32, copy=True) if not final else np.zeros(0, np.float32)
        self.emitted = stop
        return out

    def decode_all(self, codes: Sequence[int], flush_sizes: Sequence[int]) -> np.ndarray:
        """Stream ``codes`` through this decoder, flushing after each of ``flush_sizes`` tokens (the
        rest in the final flush), and return the concatenation; for seam measurements."""
        self.reset()
        out, pos = [], 0
        for size in flush_sizes:
            if pos + size > len(codes):
                break
            self.push(codes[pos:pos + size])
            pos += size
            out.append(self.pull())
        self.push(codes[pos:])
        out.append(self.pull(final=True))
        self.reset()
        return np.concatenate(out)


def seam_snr_db(streamed: np.ndarray, whole: np.ndarray, seams: Sequence[int] = (), window: int = 640) -> dict[str, float]:
    """SNR of a streamed waveform against the whole-utterance decode: overall, and the worst over
    ``window`` samples either side of each seam (sample index), in dB."""
    if streamed.shape != whole.shape:
        raise ValueError(f"streamed {streamed.shape} and whole {whole.shape} differ in length")

    def snr(a: np.ndarray, b: np.ndarray) -> float:
        err = float(np.sum((a.astype(np.float64) - b) ** 2))
        return float("inf") if err == 0 else 10 * math.log10(float(np.sum(b.astype(np.float64) ** 2)) / err)

    local = [snr(streamed[max(0, s - window):s + window], whole[max(0, s - window):s + window]) for s in seams]
    return {"snr_db": snr(streamed, whole), "worst_seam_snr_db": min(local) if local else float("inf")}


# ---------------------------------------------------------------------------------------------
# records


@dataclass
class SpeechChunk:
    """One chunk of streamed speech. ``timing`` (a :class:`~vxlib.stream.timing.ChunkTiming`):
    ``arrival`` = the newest text piece the chunk's tokens read had arrived, ``compute_start`` = its
    first token's generation began, ``compute_end`` = decoded, ``ready`` = handed to the consumer;
    ``tokens_done`` = its last token was generated. ``stop`` is set on a sentence's last chunk:
    ``"eoa"`` (the model ended it) or ``"limit"`` (a token cap cut it)."""

    audio: np.ndarray  # (samples,) float32 at the codec's rate
    sentence: int
    replica: int
    index: int  # chunk number within the request
    tokens: int
    first_sample: int  # position in the request's output
    tokens_done: float
    timing: ChunkTiming
    text: str = ""  # the sentence text fed so far (for displays)
    stop: str = ""
    codes: list[int] = field(default_factory=list)  # the audio codes this chunk's samples were decoded for


# ---------------------------------------------------------------------------------------------
# model stack and replicas


@dataclass
class TTSStack:
    """Everything a replica needs, loaded once and shared read-only: the GPT, its frozen text table
    and the codec. ``label`` says what the model is (a trained checkpoint or a random demo model)."""

    model: GPT
    text_table: torch.Tensor  # (386, D_text)
    codec: AudioCodec
    label: str
    _int8: GPT | None = field(default=None, init=False, repr=False)
    _int8_codec: AudioCodec | None = field(default=None, init=False, repr=False)

    def model_for(self, precision: str) -> GPT:
        """The GPT in ``precision`` ("fp32": :attr:`model`; "int8": its dynamically quantised copy,
        built once on first use and shared by the replicas; CPU only)."""
        if precision == "fp32":
            return self.model
        if precision == "int8":
            if self._int8 is None:
                self._int8 = quantize_int8(self.model)
            return self._int8
        raise ValueError(f"precision must be 'fp32' or 'int8', got {precision!r}")

    def codec_for(self, precision: str) -> AudioCodec:
        """The codec whose decoder runs in ``precision`` ("int8": the codec's ``int8_decoder()``,
        built once and shared; a codec without one, such as WorldCodec, is returned as it is)."""
        if precision == "fp32":
            return self.codec
        if precision == "int8":
            if self._int8_codec is None:
                make = getattr(self.codec, "int8_decoder", None)
                self._int8_codec = make() if make is not None else self.codec
            return self._int8_codec
        raise ValueError(f"precision must be 'fp32' or 'int8', got {precision!r}")

    @property
    def sample_rate(self) -> int:
        return self.codec.sample_rate

    def embedder(self) -> InputEmbedder:
        return InputEmbedder(self.text_table, self.codec.codebook).to(next(self.model.parameters()).device)

    def to(self, device: str | torch.device) -> "TTSStack":
        """A copy on ``device`` (the GPT; the codec too when it is a torch module, e.g. WavTokenizer)."""
        import copy

        codec = copy.deepcopy(self.codec).to(device) if isinstance(self.codec, torch.nn.Module) else self.codec
        return TTSStack(copy.deepcopy(self.model).to(device), self.text_table, codec, f"{self.label} on {device}")

    @classmethod
    def from_checkpoint(cls, path: str | os.PathLike, codec: AudioCodec | None = None) -> "TTSStack":
        """A trained GPT (``ckpt.pt`` from :mod:`vxlib.llmvox.train` or the released checkpoint).
        The text table and, when ``codec`` is None, the codec come from the checkpoint's ``config``
        (vxlib-trained checkpoints record both); the released checkpoint has no such record, so
        pass its WavTokenizer and expect the ByT5 table via ``config.text_embedding``."""
        from vxlib.llmvox.data import load_codec, load_text_table

        model = load_checkpoint(path)
        cfg = torch.load(path, map_location="cpu", weights_only=True).get("config") or {}
        if codec is None:
            if "codec" not in cfg:
                raise ValueError(f"{path}: the checkpoint records no codec; pass codec=")
            codec = load_codec(cfg["codec"])
        spec = cfg.get("text_embedding", "default")
        table = load_text_table(spec, int(cfg.get("text_embedding_dim", model.config.n_embd - codec.feature_dim)))
        if table.shape[1] + codec.feature_dim != model.config.n_embd:
            raise ValueError(f"{path}: text table width {table.shape[1]} + codec feature_dim {codec.feature_dim} "
                             f"!= model n_embd {model.config.n_embd}")
        return cls(model, table, codec, f"trained GPT {os.fspath(path)}")

    @classmethod
    def load(cls, gpt_checkpoint: str | os.PathLike = "", codec: dict | None = None, seed: int = 0) -> "TTSStack":
        """The one way the server, notebook and benchmark build a stack. ``gpt_checkpoint`` empty
        gives :meth:`random_demo` (untrained, labelled so). ``codec`` is a codec spec:
        ``{"type": "world", "dir": DIR}``, ``{"type": "wavtokenizer", "config": YAML, "ckpt": CKPT}``
        (both as in :func:`vxlib.llmvox.data.load_codec`) or ``{"type": "wavtokenizer-random"}`` (the
        full-size WavTokenizer architecture with random weights: noise, for speed measurements
        only); None takes the codec the checkpoint records."""
        audio_codec = build_codec(codec, seed) if codec is not None else None
        if gpt_checkpoint:
            return cls.from_checkpoint(gpt_checkpoint, audio_codec)
        if audio_codec is None:
            raise ValueError("a random demo model needs a codec spec (no checkpoint to read one from)")
        return cls.random_demo(audio_codec, seed=seed)

    @classmethod
    def random_demo(cls, codec: AudioCodec, config: GPTConfig | None = None, seed: int = 0) -> "TTSStack":
        """An UNTRAINED, randomly initialised GPT (it babbles): for plumbing, latency and speed
        only. ``config`` defaults to the released size (4 x 768) with the codec's vocabulary."""
        text_dim = 256
        config = config or GPTConfig(n_embd=text_dim + codec.feature_dim, vocab_size=codec.codebook_size)
        torch.manual_seed(seed)
        model = GPT(config).eval()
        table = default_byte_embedding(config.n_embd - codec.feature_dim, seed)
        return cls(model, table, codec, f"UNTRAINED random GPT {config.n_layer}x{config.n_embd} (seed {seed})")


def build_codec(spec: dict, seed: int = 0) -> AudioCodec:
    """A codec from a spec (see :meth:`TTSStack.load`)."""
    if spec.get("type") == "wavtokenizer-random":
        from vxlib.codec.wavtokenizer import WavTokenizer, WavTokenizerConfig

        torch.manual_seed(seed)
        codec = WavTokenizer(WavTokenizerConfig())
        codec.feature_extractor.encodec.quantizer.codebook.embed.normal_()  # a random codebook, so inputs differ
        return codec
    from vxlib.llmvox.data import load_codec

    return load_codec(spec)


class Replica:
    """One speaking replica: its own KV cache (a :class:`SpeechGenerator` over the shared weights),
    its own :class:`SeamlessDecoder` and its dump schedule. Not thread-safe: one sentence at a time."""

    def __init__(self, stack: TTSStack, index: int, config: StreamConfig, embedder: InputEmbedder | None = None):
        self.stack, self.index, self.config = stack, index, config
        max_len = min(config.max_tokens_per_sentence, stack.model.config.block_size)
        self.generator = SpeechGenerator(stack.model_for(config.gpt_precision), embedder or stack.embedder(), max_len=max_len,
                                         pad_id=PAD_ID, eoa_code=EOA_CODE)
        self.decoder = SeamlessDecoder(stack.codec_for(config.decoder_precision), config.left_context, config.lookahead,
                                       config.crossfade)
        self.schedule = config.schedule(index)
        self.max_tokens = max_len

    def reset(self) -> None:
        """Between requests: the schedule starts over (within a request it carries over)."""
        self.schedule.reset()
        self.generator.reset()
        self.decoder.reset()

    def speak(self, sentence: "_Sentence", clock: Clock, token: CancelToken) -> None:
        """Turn one sentence's text pieces into chunks on ``sentence.out`` (closed at the end)."""
        gen, dec, cfg = self.generator, self.decoder, self.config
        gen.reset()
        dec.reset()
        ids: collections.deque[int] = collections.deque()
        word_open, text_done, text = False, False, ""
        arrival = sentence.opened
        pads, n = 0, 0
        chunk_start = clock.now()
        stop = "limit"
        try:
            while n < self.max_tokens:
                while not ids and not text_done:  # one text id per step: wait for text when none is left
                    try:
                        piece, arrival = sentence.text.get()
                    except Closed:
                        ids.extend(end_ids(word_open))
                        text_done = True
                        break
                    text += piece
                    new, word_open = text_ids(piece, word_open)
                    ids.extend(new)
                token.raise_if_cancelled()
                if ids:
                    text_id = ids.popleft()
                else:
                    if cfg.max_pad_tokens is not None and pads >= cfg.max_pad_tokens:
                        break
                    text_id, pads = PAD_ID, pads + 1
                code = gen.step(text_id, cfg.temperature)
                if code == EOA_CODE and text_done and not ids:
                    stop = "eoa"  # the end-of-audio code ends the sentence and is not decoded
                    break
                dec.push(code)
                n += 1
                if dec.pending_tokens >= self.schedule.current + dec.lookahead:
                    sentence.emit(self, dec, chunk_start, arrival, clock, text, final=False)
                    self.schedule.advance()
                    chunk_start = clock.now()  # the next chunk's tokens start now
            sentence.emit(self, dec, chunk_start, arrival, clock, text, final=True, stop=stop)
        finally:
            sentence.out.close()


@dataclass
class _Sentence:
    index: int
    replica: int
    text: ClosableQueue  # (piece, arrival time) items; closed at the sentence end
    out: ClosableQueue  # SpeechChunk items; closed by the replica
    opened: float
    first_audio: threading.Event | None = None  # set by the request's first chunk (see StreamConfig)

    def emit(self, replica: Replica, dec: SeamlessDecoder, chunk_start: float, arrival: float, clock: Clock,
             text: str, final: bool, stop: str = "") -> None:
        before = dec.emitted
        tokens_done = clock.now()
        audio = dec.pull(final)
        if audio.size == 0:
            return
        decoded = clock.now()
        first, last = before // dec.hop, dec.emitted // dec.hop
        self.out.put(SpeechChunk(audio, self.index, replica.index, -1, last - first, -1, tokens_done,
                                 ChunkTiming(-1, arrival, chunk_start, decoded, decoded), text, stop,
                                 dec.codes[first:last]))
        if self.first_audio is not None:
            self.first_audio.set()


class MultiQueueStreamer:
    """Two replicas speaking alternate sentences of a text stream (see the module docstring).

    ``stack_b`` (optional) is replica B's copy of the stack, e.g. on a second GPU.
    ``stream(pieces) -> SpeechStream``: ``pieces`` is any iterable of text pieces (a
    :class:`vxlib.llmvox.sources.TextSource` stream, a list); iterate the result for
    :class:`SpeechChunk` s in sentence order, or ``close()`` it to cancel. One request at a time
    per streamer (the server keeps a pool of streamers).
    """

    def __init__(self, stack: TTSStack, config: StreamConfig | None = None, clock: Clock | None = None,
                 stack_b: TTSStack | None = None):
        self.stack = stack
        self.config = config or StreamConfig()
        self.clock = clock or MonotonicClock()
        if stack_b is not None and stack_b.sample_rate != stack.sample_rate:
            raise ValueError(f"replica stacks differ in sample rate: {stack.sample_rate} vs {stack_b.sample_rate}")
        self.replicas = [Replica(s, i, self.config) for i, s in enumerate((stack, stack_b or stack))]
        self._busy = False

    @property
    def sample_rate(self) -> int:
        return self.stack.sample_rate

    def stream(self, pieces, token: CancelToken | None = None) -> "SpeechStream":
        if self._busy:
            raise RuntimeError("this streamer is already serving a request (use one streamer per concurrent request)")
        return SpeechStream(self, pieces, token or CancelToken())

    def speak(self, text: str) -> tuple[np.ndarray, list[SpeechChunk]]:
        """The whole text at once (not streamed to the caller): ``(audio, chunks)``."""
        with self.stream([text]) as s:
            chunks = list(s)
        audio = np.concatenate([c.audio for c in chunks]) if chunks else np.zeros(0, np.float32)
        return audio, chunks


class SpeechStream:
    """One request's stream: an iterator of :class:`SpeechChunk` and a context manager.

    Threads: a producer (reads the text, splits sentences, routes them) and one worker per replica.
    ``close()`` (also on leaving a ``with`` block, or when the iterator is closed or collected)
    cancels them and joins every thread before returning. Attributes after/while iterating:
    ``chunks`` (the records), ``first_text_time`` (arrival of the first text piece),
    ``time_to_first_audio`` (s from the first text piece to the first chunk being ready).
    """

    def __init__(self, streamer: MultiQueueStreamer, pieces, token: CancelToken):
        self.streamer, self.clock = streamer, streamer.clock
        self.group = WorkerGroup("llmvox-stream", token)
        self.chunks: list[SpeechChunk] = []
        self.first_text_time: float | None = None
        self.sentences: list[str] = []
        self._order: ClosableQueue = self.group.queue()  # _Sentence objects in sentence order
        self._inboxes = [self.group.queue(), self.group.queue()]  # per replica
        self._samples = 0
        self._first_audio = threading.Event()  # the request's first chunk exists (or sentence 0 ended silent)
        self._iter = self._run()
        streamer._busy = True
        for r in streamer.replicas:
            r.reset()
        try:
            for r, inbox in zip(streamer.replicas, self._inboxes):
                self.group.spawn(self._replica_loop, r, inbox, name=f"replica{r.index}")
            self.group.spawn(self._produce, pieces, name="producer")
        except BaseException:
            self.close()
            raise

    # -- threads

    def _produce(self, pieces) -> None:
        cfg = self.streamer.config
        splitter = SentenceSplitter(cfg.sentence_ends)
        current: _Sentence | None = None
        try:
            for piece in pieces:
                self.group.token.raise_if_cancelled()
                if not isinstance(piece, str):
                    raise TypeError(f"text pieces must be str, got {type(piece).__name__}")
                now = self.clock.now()
                if self.first_text_time is None:
                    self.first_text_time = now
                for text, ends in splitter.feed(clean_text(piece)):
                    if current is None and text.strip():
                        k = len(self.sentences)
                        current = _Sentence(k, k % 2, self.group.queue(), self.group.queue(), now, self._first_audio)
                        self.sentences.append("")
                        self._inboxes[k % 2].put(current)
                        self._order.put(current)
                    if current is not None:
                        if text:
                            current.text.put((text, now))
                            self.sentences[current.index] += text
                        if ends:
                            current.text.close()
                            current = None
        finally:
            if current is not None:
                current.text.close()
            for inbox in self._inboxes:
                inbox.close()
            self._order.close()

    def _replica_loop(self, replica: Replica, inbox: ClosableQueue) -> None:
        cfg = self.streamer.config
        on_cpu = next(replica.stack.model.parameters()).device.type == "cpu"
        threads = (cfg.replica_threads or max(1, (os.cpu_count() or 2) // 2)) if on_cpu else torch.get_num_threads()
        with intra_op_threads(threads):  # this thread's own OpenMP team (see StreamConfig.replica_threads)
            while True:
                try:
                    sentence = inbox.get()
                except Closed:
                    return
                if sentence.index > 0 and cfg.first_audio_priority:
                    while not self._first_audio.wait(0.005):
                        self.group.token.raise_if_cancelled()
                try:
                    replica.speak(sentence, self.clock, self.group.token)
                finally:
                    if sentence.index == 0:
                        self._first_audio.set()  # also when sentence 0 produced no audio or failed

    # -- consumer

    def _run(self) -> Iterator[SpeechChunk]:
        try:
            while True:
                try:
                    sentence = self._order.get()
                except Closed:
                    break
                while True:
                    try:
                        chunk = sentence.out.get()
                    except Closed:
                        break
                    ready = self.clock.now()
                    t = chunk.timing
                    chunk.index = len(self.chunks)
                    chunk.first_sample = self._samples
                    chunk.timing = ChunkTiming(chunk.index, t.arrival, t.compute_start, t.compute_end, ready)
                    self._samples += chunk.audio.size
                    self.chunks.append(chunk)
                    yield chunk
        except Cancelled:
            self.group.check()  # a worker's error is the real cause
            raise
        finally:
            self.close()
        self.group.check()

    def __iter__(self) -> "SpeechStream":
        return self

    def __next__(self) -> SpeechChunk:
        return next(self._iter)

    def __enter__(self) -> "SpeechStream":
        return self

    def __exit__(self, *exc: Any) -> None:
        self.close()

    def __del__(self):
        if self.streamer._busy and self.group.alive:
            self.close()

    def close(self) -> None:
        """Cancel (if still running) and join every thread of this request; idempotent."""
        if self.group.token.cancelled and not self.group.alive:
            self.streamer._busy = False
            return
        try:
            self.group.close("stream closed")
        finally:
            self.streamer._busy = False
            if self._iter.gi_frame is not None and not self._iter.gi_running:  # closed from outside the iteration
                self._iter.close()

    @property
    def time_to_first_audio(self) -> float | None:
        if not self.chunks or self.first_text_time is None:
            return None
        return self.chunks[0].timing.ready - self.first_text_time

    def audio(self) -> np.ndarray:
        return np.concatenate([c.audio for c in self.chunks]) if self.chunks else np.zeros(0, np.float32)

    def timeline(self) -> list[dict[str, float | int | str]]:
        """One row per chunk, times in ms from the first text piece (for plots and tables)."""
        t0 = self.first_text_time or 0.0
        ms = lambda t: 1e3 * (t - t0)  # noqa: E731
        sr = self.streamer.sample_rate
        return [{"chunk": c.index, "sentence": c.sentence, "replica": c.replica, "tokens": c.tokens,
                 "audio_ms": 1e3 * c.audio.size / sr, "start_ms": 1e3 * c.first_sample / sr,
                 "text_arrival_ms": ms(c.timing.arrival), "generation_start_ms": ms(c.timing.compute_start),
                 "tokens_done_ms": ms(c.tokens_done), "decoded_ms": ms(c.timing.compute_end),
                 "ready_ms": ms(c.timing.ready), "stop": c.stop} for c in self.chunks]
