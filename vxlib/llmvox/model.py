"""The LLMVoX speech-token GPT: a small decoder-only transformer that turns a stream of text ids
into WavTokenizer codes, one audio token per text id.

Architecture (mbzuai-oryx/LLMVoX ``src/model.py``, itself nanoGPT without a token embedding): the
input at step t is already a vector, ``normalize(concat[text_embedding(id_t), codebook(code_{t-1})])``
(see :class:`InputEmbedder`); a learned absolute position table is added; pre-LayerNorm blocks with
SDPA attention and a tanh-GELU MLP; a LayerNorm; an untied ``lm_head`` over the 4096 codes.
Parameter names and shapes are the official ones, so ``ckpt_english_tiny.pt`` loads unchanged.

Read bottom-up: LayerNorm -> attention -> MLP -> Block -> GPTConfig -> GPT, then the inference
pieces kept apart from the module: KVCache (preallocated), InputEmbedder, SpeechGenerator
(greedy/sampled decoding), the checkpoint loader and the int8 weight path.

Position modes of incremental decoding (``position_mode``):

- ``"reference"``: the released model was run by the reference server with positions
  0, 1, 1, 1, ... (its forward adds ``wpe[arange(t)]`` to a two-token window and keeps the last
  row). Cached keys keep the position they were computed with. This is what the released
  checkpoint's audio was produced with, and it equals a full forward only for the first two steps.
- ``"standard"``: positions 0..T-1 as in training; incremental decoding equals the full forward.
"""

from __future__ import annotations

import math
import os
import warnings
from dataclasses import asdict, dataclass, fields
from typing import Iterator, Literal

import torch
import torch.nn as nn
from torch.nn import functional as F

from vxlib.quant import Int8Linear, quantize_modules  # noqa: F401  (Int8Linear: re-exported)

__all__ = [
    "IGNORE_INDEX",
    "EOA_CODE",
    "CheckpointError",
    "GPTConfig",
    "GPT",
    "KVCache",
    "InputEmbedder",
    "SpeechGenerator",
    "SpeculativeGenerator",
    "load_checkpoint",
    "load_state_dict_strict",
    "model_args",
    "quantize_int8",
]

PositionMode = Literal["reference", "standard"]

IGNORE_INDEX = -1000  # target value skipped by the loss (the reference pads targets with -1000)
EOA_CODE = 453  # end of audio: the reference reuses codebook entry 453 (its real occurrences are deleted)


class CheckpointError(ValueError):
    """A checkpoint that does not fit the model. The message names the file and every bad key."""


# ---------------------------------------------------------------------------------------------
# layers


class LayerNorm(nn.Module):
    """LayerNorm with an optional bias (``nn.LayerNorm`` cannot drop only the bias); eps 1e-5."""

    def __init__(self, ndim: int, bias: bool):
        super().__init__()
        self.weight = nn.Parameter(torch.ones(ndim))
        self.bias = nn.Parameter(torch.zeros(ndim)) if bias else None

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.layer_norm(x, self.weight.shape, self.weight, self.bias, 1e-5)


class CausalSelfAttention(nn.Module):
    """Multi-head self-attention through ``F.scaled_dot_product_attention`` (flash kernels on GPU).

    Without a cache the attention is causal over the given sequence. With a cache (a pair of
    preallocated ``(B, n_head, max_len, head_dim)`` buffers and the number of positions already
    filled) the new keys/values are written in place and the new queries attend to every cached
    position plus the causal part of the new chunk.
    """

    def __init__(self, config: "GPTConfig"):
        super().__init__()
        assert config.n_embd % config.n_head == 0, "n_embd must be a multiple of n_head"
        self.n_head = config.n_head
        self.n_embd = config.n_embd
        self.dropout = config.dropout
        self.c_attn = nn.Linear(config.n_embd, 3 * config.n_embd, bias=config.bias)  # q, k, v at once
        self.c_proj = nn.Linear(config.n_embd, config.n_embd, bias=config.bias)
        self.resid_dropout = nn.Dropout(config.dropout)

    def forward(
        self, x: torch.Tensor, cache: tuple[torch.Tensor, torch.Tensor] | None = None, start: int = 0
    ) -> torch.Tensor:
        B, T, C = x.shape
        hd = C // self.n_head
        q, k, v = self.c_attn(x).split(self.n_embd, dim=2)
        q = q.view(B, T, self.n_head, hd).transpose(1, 2)  # (B, nh, T, hd)
        k = k.view(B, T, self.n_head, hd).transpose(1, 2)
        v = v.view(B, T, self.n_head, hd).transpose(1, 2)
        mask = None
        causal = cache is None and T > 1
        if cache is not None:
            k_buf, v_buf = cache  # (B, nh, max_len, hd) each
            end = start + T
            k_buf[:, :, start:end] = k
            v_buf[:, :, start:end] = v
            k, v = k_buf[:, :, :end], v_buf[:, :, :end]  # (B, nh, end, hd) views, no copy
            if T > 1:
                if start == 0:
                    causal = True
                else:  # chunk appended to a filled cache: causal mask aligned bottom-right
                    mask = torch.ones(T, end, dtype=torch.bool, device=x.device).tril(diagonal=start)
        dropout_p = self.dropout if self.training else 0.0
        y = F.scaled_dot_product_attention(q, k, v, attn_mask=mask, dropout_p=dropout_p, is_causal=causal)
        y = y.transpose(1, 2).contiguous().view(B, T, C)  # re-assemble heads: (B, T, C)
        return self.resid_dropout(self.c_proj(y))


class MLP(nn.Module):
    def __init__(self, config: "GPTConfig"):
        super().__init__()
        self.c_fc = nn.Linear(config.n_embd, 4 * config.n_embd, bias=config.bias)
        self.c_proj = nn.Linear(4 * config.n_embd, config.n_embd, bias=config.bias)
        self.dropout = nn.Dropout(config.dropout)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        # tanh-approximated GELU, as the reference's new_gelu (GPT-2)
        return self.dropout(self.c_proj(F.gelu(self.c_fc(x), approximate="tanh")))


class Block(nn.Module):
    """Pre-LN transformer block: x + attn(ln(x)), then x + mlp(ln(x))."""

    def __init__(self, config: "GPTConfig"):
        super().__init__()
        self.ln_1 = LayerNorm(config.n_embd, bias=config.bias)
        self.attn = CausalSelfAttention(config)
        self.ln_2 = LayerNorm(config.n_embd, bias=config.bias)
        self.mlp = MLP(config)

    def forward(
        self, x: torch.Tensor, cache: tuple[torch.Tensor, torch.Tensor] | None = None, start: int = 0
    ) -> torch.Tensor:
        x = x + self.attn(self.ln_1(x), cache, start)
        return x + self.mlp(self.ln_2(x))


# ---------------------------------------------------------------------------------------------
# model


@dataclass
class GPTConfig:
    """Hyper-parameters; the defaults are the released LLMVoX model's (``configs/train_config.py``)."""

    n_layer: int = 4
    n_head: int = 8
    n_embd: int = 768  # = input width: 256 (ByT5 byte embedding) + 512 (WavTokenizer codebook vector)
    block_size: int = 8192  # longest sequence (position table rows): ~109 s of audio at 75 tokens/s
    vocab_size: int = 4096  # WavTokenizer codebook size; EOA reuses code 453, no extra slot
    dropout: float = 0.0
    bias: bool = False  # no biases in Linear/LayerNorm: a little faster, and what the release uses

    @classmethod
    def from_model_args(cls, model_args: dict) -> "GPTConfig":
        """Build from a checkpoint's ``model_args`` (unknown keys such as ``is_train`` are ignored)."""
        known = {f.name for f in fields(cls)}
        return cls(**{k: v for k, v in model_args.items() if k in known})


class GPT(nn.Module):
    """Speech-token GPT. Shape contract:

    - ``forward(inputs (B, T, n_embd), targets (B, T) | None) -> (logits (B, T, vocab), loss | None)``:
      a causal full forward at positions 0..T-1 (training, scoring). ``targets`` equal to
      :data:`IGNORE_INDEX` (-1000) are skipped by the cross-entropy. Unlike the reference, logits
      are returned for every position also without targets.
    - ``step(inputs (B, T, n_embd), cache, position_mode) -> logits (B, T, vocab)``: incremental
      decoding on a preallocated :class:`KVCache` (normally T = 1).
    """

    def __init__(self, config: GPTConfig):
        super().__init__()
        self.config = config
        self.transformer = nn.ModuleDict(
            dict(
                wpe=nn.Embedding(config.block_size, config.n_embd),
                drop=nn.Dropout(config.dropout),
                h=nn.ModuleList([Block(config) for _ in range(config.n_layer)]),
                ln_f=LayerNorm(config.n_embd, bias=config.bias),
            )
        )
        self.lm_head = nn.Linear(config.n_embd, config.vocab_size, bias=False)  # untied: there is no wte
        self.apply(self._init_weights)
        for name, p in self.named_parameters():
            if name.endswith("c_proj.weight"):  # GPT-2: scale residual projections by depth
                nn.init.normal_(p, mean=0.0, std=0.02 / math.sqrt(2 * config.n_layer))

    def _init_weights(self, module: nn.Module) -> None:
        if isinstance(module, (nn.Linear, nn.Embedding)):
            nn.init.normal_(module.weight, mean=0.0, std=0.02)
        if isinstance(module, nn.Linear) and module.bias is not None:
            nn.init.zeros_(module.bias)

    def num_params(self, non_embedding: bool = True) -> int:
        """Parameter count, by default without the position table (the paper's "30M")."""
        n = sum(p.numel() for p in self.parameters())
        return n - self.transformer.wpe.weight.numel() if non_embedding else n

    def _check_inputs(self, inputs: torch.Tensor, start: int) -> None:
        if inputs.dim() != 3 or inputs.shape[-1] != self.config.n_embd:
            raise ValueError(f"inputs must be (B, T, {self.config.n_embd}), got {tuple(inputs.shape)}")
        if start + inputs.shape[1] > self.config.block_size:
            raise ValueError(
                f"sequence of {start + inputs.shape[1]} steps exceeds block_size {self.config.block_size}"
            )

    def forward(
        self, inputs: torch.Tensor, targets: torch.Tensor | None = None
    ) -> tuple[torch.Tensor, torch.Tensor | None]:
        self._check_inputs(inputs, 0)
        T = inputs.shape[1]
        pos = torch.arange(T, device=inputs.device)
        x = self.transformer.drop(inputs + self.transformer.wpe(pos))  # (B, T, C)
        for block in self.transformer.h:
            x = block(x)
        logits = self.lm_head(self.transformer.ln_f(x))  # (B, T, V)
        loss = None
        if targets is not None:
            loss = F.cross_entropy(
                logits.view(-1, logits.size(-1)), targets.reshape(-1), ignore_index=IGNORE_INDEX
            )
        return logits, loss

    def step(
        self, inputs: torch.Tensor, cache: "KVCache", position_mode: PositionMode = "reference"
    ) -> torch.Tensor:
        """Feed the next ``T`` input vectors, append their keys/values to ``cache`` and return their
        logits ``(B, T, vocab)``. Positions follow ``position_mode`` (see the module docstring)."""
        start = cache.length
        self._check_inputs(inputs, start)
        T = inputs.shape[1]
        if T > cache.max_len - start:
            raise ValueError(f"KV cache full: {start} + {T} steps > max_len {cache.max_len}")
        x = inputs + self.transformer.wpe.weight[_positions(start, T, position_mode)]
        for block, layer_cache in zip(self.transformer.h, cache.layers):
            x = block(x, layer_cache, start)
        cache.length = start + T
        return self.lm_head(self.transformer.ln_f(x))


def _positions(start: int, T: int, mode: PositionMode) -> slice | list[int]:
    """Position-table rows for absolute steps start..start+T-1; a slice when possible (no index op)."""
    if mode == "standard":
        return slice(start, start + T)
    if mode == "reference":  # the reference server: step 0 -> row 0, every later step -> row 1
        if start >= 1:
            return [1] * T if T > 1 else slice(1, 2)
        return [min(i, 1) for i in range(T)] if T > 1 else slice(0, 1)
    raise ValueError(f"position_mode must be 'reference' or 'standard', got {mode!r}")


# ---------------------------------------------------------------------------------------------
# inference


class KVCache:
    """Keys and values of every layer, preallocated once for ``max_len`` steps.

    ``layers[i] = (k, v)``, each ``(B, n_head, max_len, head_dim)``; ``length`` positions are
    filled. A step writes its keys/values in place, so a decode step costs no reallocation or copy
    of the past (the reference concatenates, copying the whole cache every step).
    """

    def __init__(
        self,
        config: GPTConfig,
        batch_size: int = 1,
        max_len: int | None = None,
        device: torch.device | str | None = None,
        dtype: torch.dtype = torch.float32,
    ):
        self.max_len = max_len or config.block_size
        if not 0 < self.max_len <= config.block_size:
            raise ValueError(f"KV cache max_len must be in [1, block_size={config.block_size}], got {max_len}")
        hd = config.n_embd // config.n_head
        shape = (batch_size, config.n_head, self.max_len, hd)
        self.layers = [
            (torch.zeros(shape, device=device, dtype=dtype), torch.zeros(shape, device=device, dtype=dtype))
            for _ in range(config.n_layer)
        ]
        self.length = 0

    def reset(self) -> None:
        """Start a new sequence (the buffers are reused, old entries are simply overwritten)."""
        self.length = 0


class InputEmbedder(nn.Module):
    """Builds the GPT input from text ids and previous audio codes (both tables frozen buffers).

    ``forward(text_ids (B, T), prev_codes (B, T)) -> (B, T, D_text + D_audio)``: row t is
    ``normalize(concat[text_table[text_ids[t]], codebook[prev_codes[t]]])`` (L2 over the whole
    vector, eps 1e-8); previous code -1 stands for "no previous token" (a zero vector, used at
    t = 0). Concatenated, not added, as in the reference.
    """

    def __init__(self, text_table: torch.Tensor, codebook: torch.Tensor):
        super().__init__()
        if text_table.dim() != 2 or codebook.dim() != 2:
            raise ValueError(f"tables must be 2-D, got {tuple(text_table.shape)} and {tuple(codebook.shape)}")
        self.register_buffer("text_table", text_table.detach().float().clone(), persistent=False)
        # one extra zero row at the end: index -1 ("no previous token") gathers zeros with no branch
        zero = torch.zeros(1, codebook.shape[1], dtype=torch.float32, device=codebook.device)
        self.register_buffer("codebook", torch.cat([codebook.detach().float(), zero]), persistent=False)

    @property
    def dim(self) -> int:
        return self.text_table.shape[1] + self.codebook.shape[1]

    def check_ids(self, text_ids: torch.Tensor, prev_codes: torch.Tensor | None = None) -> None:
        """Raise ``ValueError`` for ids outside the tables (``forward`` does not check: it is the
        per-token hot path and the generator's codes are in range by construction)."""
        n_text, n_codes = self.text_table.shape[0], self.codebook.shape[0] - 1
        if text_ids.numel() and (int(text_ids.min()) < 0 or int(text_ids.max()) >= n_text):
            raise ValueError(f"text ids must be in [0, {n_text}), got min {int(text_ids.min())}, max {int(text_ids.max())}")
        if prev_codes is not None and prev_codes.numel() and (int(prev_codes.min()) < -1 or int(prev_codes.max()) >= n_codes):
            raise ValueError(f"previous codes must be in [-1, {n_codes}), got min {int(prev_codes.min())}, max {int(prev_codes.max())}")

    def forward(self, text_ids: torch.Tensor, prev_codes: torch.Tensor) -> torch.Tensor:
        # -1 wraps to the last row, the zero vector; F.embedding is a plain row gather (cheaper than
        # advanced indexing, which matters once per generated token)
        audio = F.embedding(prev_codes % self.codebook.shape[0], self.codebook)  # (B, T, D_audio)
        x = torch.cat([F.embedding(text_ids, self.text_table), audio], dim=-1)  # (B, T, D_text + D_audio)
        return F.normalize(x, p=2, dim=-1, eps=1e-8)


class SpeechGenerator:
    """Inference object: one model, one embedder and one preallocated cache, reused across
    utterances. Each utterance starts from an empty cache (as each sentence does in the reference).

    Decoding: one audio code per text id; after the text ids run out the generator keeps feeding
    ``pad_id`` until the model emits ``eoa_code`` or ``max_new_tokens`` is reached. Greedy when
    ``temperature == 0`` (the reference), else softmax sampling with optional top-k.
    """

    def __init__(
        self,
        model: GPT,
        embedder: InputEmbedder,
        max_len: int = 2048,
        position_mode: PositionMode = "reference",
        pad_id: int = 384,
        eoa_code: int | None = EOA_CODE,  # None: never stop early (benchmarks)
    ):
        if embedder.dim != model.config.n_embd:
            raise ValueError(f"embedder width {embedder.dim} != model n_embd {model.config.n_embd}")
        _positions(0, 1, position_mode)  # validate early
        self.model = model.eval()
        self.embedder = embedder
        self.position_mode = position_mode
        self.pad_id, self.eoa_code = pad_id, eoa_code
        p = next(model.parameters())
        self.device = p.device
        self.cache = KVCache(model.config, 1, max_len, device=self.device, dtype=torch.float32)
        # prebuilt (1, 1) index tensors reused by every step: no allocation in the loop
        self._text = torch.zeros(1, 1, dtype=torch.long, device=self.device)
        self._prev = torch.full((1, 1), -1, dtype=torch.long, device=self.device)

    def reset(self) -> None:
        self.cache.reset()
        self._prev.fill_(-1)

    @torch.inference_mode()
    def step(self, text_id: int, temperature: float = 0.0, top_k: int | None = None,
             generator: torch.Generator | None = None) -> int:
        """Feed one text id (with the previous code) and return the next audio code."""
        self._text.fill_(text_id)
        logits = self.model.step(self.embedder(self._text, self._prev), self.cache, self.position_mode)
        code = _pick(logits[0, -1], temperature, top_k, generator)
        self._prev.fill_(code)
        return code

    def stream(
        self,
        text_ids: list[int],
        max_new_tokens: int = 2000,
        temperature: float = 0.0,
        top_k: int | None = None,
        generator: torch.Generator | None = None,
    ) -> Iterator[int]:
        """Yield audio codes one at a time for one utterance (EOA itself is not yielded). Stopping
        at ``max_new_tokens`` without EOA is reported with a :class:`RuntimeWarning`."""
        if max_new_tokens > self.cache.max_len:
            raise ValueError(f"max_new_tokens {max_new_tokens} > the generator's max_len {self.cache.max_len}")
        self.embedder.check_ids(torch.as_tensor(list(text_ids) + [self.pad_id], dtype=torch.long))
        self.reset()
        for code in self._codes(text_ids, max_new_tokens, temperature, top_k, generator):
            if code == self.eoa_code:
                return
            yield code
        if self.eoa_code is not None:
            warnings.warn(f"no end-of-audio code after {max_new_tokens} tokens: output cut there", RuntimeWarning, stacklevel=2)

    def _codes(self, text_ids: list[int], n: int, temperature: float, top_k: int | None,
               generator: torch.Generator | None) -> Iterator[int]:
        """The next ``n`` codes from a reset state, one step each (EOA included, :meth:`stream` stops there)."""
        for t in range(n):
            yield self.step(text_ids[t] if t < len(text_ids) else self.pad_id, temperature, top_k, generator)

    def generate(self, text_ids: list[int], max_new_tokens: int = 2000, **sampling) -> torch.Tensor:
        """All codes of one utterance as a ``(T,)`` long tensor (without EOA)."""
        return torch.tensor(list(self.stream(text_ids, max_new_tokens, **sampling)), dtype=torch.long)


class SpeculativeGenerator(SpeechGenerator):
    """Greedy decoding of the fp32 model, drafted by its int8 copy and verified in batches.

    A decode step streams all weights for one token, so its cost hardly changes when it scores
    several positions at once. Each round the cheap ``draft`` model (by default
    :func:`quantize_int8` of ``model``) proposes ``draft_tokens`` codes one by one; the fp32
    ``model`` then scores all of them (plus one more position) in a single cached step and keeps
    the drafts up to the first one it disagrees with, replacing that one by its own choice
    (speculative decoding: Leviathan et al. 2023, "Fast Inference from Transformers via
    Speculative Decoding"; Chen et al. 2023). Every emitted code is therefore the fp32 model's
    greedy choice given the codes before it. The fp32 scores come from a multi-row product instead
    of the one-row product of :class:`SpeechGenerator`, so the two can differ where two logits tie
    within float rounding (~1e-6); otherwise the outputs are identical (tested).

    Rejected positions cost nothing to undo: both caches are preallocated, and rolling back is
    setting ``length``. Greedy only (``temperature == 0``). ``acceptance`` reports the fraction of
    drafted codes kept since the last reset; the speed-up depends on it (on a model whose int8 and
    fp32 greedy choices agree, a round of k drafts yields k + 1 codes for k int8 steps and one
    fp32 step).
    """

    def __init__(
        self,
        model: GPT,
        embedder: InputEmbedder,
        draft: GPT | None = None,
        draft_tokens: int = 2,
        max_len: int = 2048,
        position_mode: PositionMode = "reference",
        pad_id: int = 384,
        eoa_code: int | None = EOA_CODE,
    ):
        super().__init__(model, embedder, max_len, position_mode, pad_id, eoa_code)
        if draft_tokens < 1:
            raise ValueError(f"draft_tokens must be >= 1, got {draft_tokens}")
        self.draft = (draft if draft is not None else quantize_int8(model)).eval()
        if self.draft.config.n_embd != model.config.n_embd:
            raise ValueError("the draft model must read the same inputs as the model (n_embd differs)")
        self.draft_tokens = draft_tokens
        self.draft_cache = KVCache(self.draft.config, 1, max_len, device=self.device, dtype=torch.float32)
        self.proposed = self.accepted = 0

    def reset(self) -> None:
        super().reset()
        self.draft_cache.reset()

    @property
    def acceptance(self) -> float:
        return self.accepted / self.proposed if self.proposed else float("nan")

    def _inputs(self, text_ids: list[int], codes: list[int], first: int, last: int) -> torch.Tensor:
        """Input vectors of positions first..last-1: (1, last - first, n_embd)."""
        text = [text_ids[t] if t < len(text_ids) else self.pad_id for t in range(first, last)]
        prev = [codes[t - 1] if t >= 1 else -1 for t in range(first, last)]
        return self.embedder(torch.tensor([text], device=self.device), torch.tensor([prev], device=self.device))

    @torch.inference_mode()
    def _round(self, text_ids: list[int], codes: list[int], budget: int) -> list[int]:
        """One draft-and-verify round after ``codes``; returns the accepted codes (1..k+1)."""
        n = len(codes)
        k = min(self.draft_tokens, budget)
        # draft: catch the draft cache up to position n (it may lag by up to two positions), then
        # propose codes n..n+k-1, each fed back as the next position's previous code
        drafts: list[int] = []
        start = self.draft_cache.length
        x = self._inputs(text_ids, codes, start, n + 1)
        for _ in range(k):
            logits = self.draft.step(x, self.draft_cache, self.position_mode)
            drafts.append(int(logits[0, -1].argmax()))
            if len(drafts) < k:
                x = self._inputs(text_ids, codes + drafts, n + len(drafts), n + len(drafts) + 1)
        # verify: the fp32 model scores positions n..n+k (n..n+k-1 when the budget ends there)
        last = n + k + 1 if k < budget else n + k
        logits = self.model.step(self._inputs(text_ids, codes + drafts, n, last), self.cache, self.position_mode)
        best = logits[0].argmax(-1).tolist()  # fp32 greedy code at each scored position
        accepted: list[int] = []
        for i, code in enumerate(best):
            accepted.append(code)
            if i >= k or drafts[i] != code:
                break
        self.proposed += k
        self.accepted += sum(1 for d, c in zip(drafts, accepted) if d == c)
        # roll back: position n+i's cached key/value is valid iff its input used accepted codes
        self.cache.length = n + len(accepted)
        self.draft_cache.length = min(self.draft_cache.length, n + len(accepted))
        return accepted

    def _codes(self, text_ids: list[int], n: int, temperature: float, top_k: int | None,
               generator: torch.Generator | None) -> Iterator[int]:
        if temperature > 0:
            raise ValueError("SpeculativeGenerator decodes greedily; use SpeechGenerator for sampling")
        self.proposed = self.accepted = 0
        codes: list[int] = []
        while len(codes) < n:
            for code in self._round(text_ids, codes, n - len(codes)):
                codes.append(code)
                yield code


def _pick(logits: torch.Tensor, temperature: float, top_k: int | None, generator: torch.Generator | None) -> int:
    """Next code from ``(vocab,)`` logits: argmax, or a sample at ``temperature`` from the top ``k``."""
    if temperature <= 0:
        return int(logits.argmax())
    logits = logits.float() / temperature
    if top_k is not None:
        kth = torch.topk(logits, min(top_k, logits.numel())).values[-1]
        logits = logits.masked_fill(logits < kth, float("-inf"))
    return int(torch.multinomial(F.softmax(logits, dim=-1), 1, generator=generator))


# ---------------------------------------------------------------------------------------------
# checkpoints


_COMPILE_PREFIX = "_orig_mod."  # torch.compile wraps the module; its state-dict keys carry this


def _strip_compile_prefix(state_dict: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    return {k[len(_COMPILE_PREFIX):] if k.startswith(_COMPILE_PREFIX) else k: v for k, v in state_dict.items()}


def load_state_dict_strict(module: nn.Module, state_dict: dict[str, torch.Tensor], source: str) -> None:
    """Load ``state_dict`` into ``module``; on any mismatch raise :class:`CheckpointError` listing the
    missing, unexpected and mis-shaped keys (the reference loads with ``strict=False`` and silently
    runs a partly random model)."""
    own = module.state_dict()
    missing = sorted(set(own) - set(state_dict))
    unexpected = sorted(set(state_dict) - set(own))
    misshaped = [
        f"{k}: checkpoint {tuple(state_dict[k].shape)} vs model {tuple(own[k].shape)}"
        for k in own
        if k in state_dict and tuple(state_dict[k].shape) != tuple(own[k].shape)
    ]
    if missing or unexpected or misshaped:
        parts = []
        for title, items in (("missing keys", missing), ("unexpected keys", unexpected), ("mis-shaped keys", misshaped)):
            if items:
                parts.append(f"{title} ({len(items)}): " + ", ".join(items))
        raise CheckpointError(f"{source}: checkpoint does not match the model: " + "; ".join(parts))
    module.load_state_dict(state_dict, strict=True)


def load_checkpoint(path: str | os.PathLike, map_location: str | torch.device = "cpu") -> GPT:
    """Load an LLMVoX GPT checkpoint (``ckpt_english_tiny.pt`` or one written by the trainer).

    The file is a nanoGPT-style dict ``{model, model_args, optimizer, iter_num, config}`` read with
    ``weights_only=True``; ``model_args`` gives the config; ``_orig_mod.`` prefixes are stripped; the
    state dict must match exactly. Returns the model in eval mode, fp32.
    """
    src = os.fspath(path)
    if not os.path.isfile(src):
        raise CheckpointError(f"{src}: file not found")
    try:
        ckpt = torch.load(src, map_location=map_location, weights_only=True)
    except Exception as err:
        raise CheckpointError(f"{src}: not a loadable torch checkpoint ({err})") from err
    if not isinstance(ckpt, dict) or "model" not in ckpt or "model_args" not in ckpt:
        keys = list(ckpt)[:10] if isinstance(ckpt, dict) else type(ckpt).__name__
        raise CheckpointError(f"{src}: expected a dict with 'model' and 'model_args' (LLMVoX layout), got {keys}")
    args = dict(ckpt["model_args"])
    args["dropout"] = 0.0  # inference
    model = GPT(GPTConfig.from_model_args(args))
    load_state_dict_strict(model, _strip_compile_prefix(ckpt["model"]), src)
    return model.eval()


# ---------------------------------------------------------------------------------------------
# int8 weights


def quantize_int8(model: GPT) -> GPT:
    """A copy of ``model`` whose Linear layers are dynamically quantised int8
    (:class:`vxlib.quant.Int8Linear`), for CPU inference: a decode step streams all weights, so 4x
    fewer bytes make it ~4x faster here (340 vs 87 steps/s for the matrix-vector products on one
    thread). LayerNorms, the position table, attention and the residual stream stay fp32. The fp32
    model remains the reference for training and conformance."""
    return quantize_modules(model, convs=False)


def model_args(config: GPTConfig) -> dict:
    """The checkpoint's ``model_args`` entry for ``config`` (the reference layout)."""
    return asdict(config)
