"""LLMVoX GPT decoding speed on CPU (issue item 7).

    python -m vxlib.bench llmvox [--threads 1 2] [--tokens 300 1000] [--repeats 3]

Default-size model (4 layers x 768, 31.5M weights), random init (speed does not depend on the
values), greedy decoding through :class:`vxlib.llmvox.model.SpeechGenerator` with the reference
position mode, run to the full token count (no early EOA stop). Variants, all in one process:

- ``naive``: the reference's cache scheme -- keys/values grow by ``torch.cat`` every step (the
  same model and step code; the cache is re-concatenated one slot longer before each step);
- ``fp32``: the preallocated KV cache (default path);
- ``int8``: :func:`~vxlib.llmvox.model.quantize_int8` weights on the preallocated cache;
- ``spec``: the fp32 model's greedy codes through :class:`~vxlib.llmvox.model.SpeculativeGenerator`
  (its int8 copy drafts ``--draft-tokens`` codes, one multi-row fp32 step verifies them).

All variants run the same weights: the random-init body with the *prototype head* described
below, so that greedy choices are decisive as in a trained model (the plain variants' speed does
not depend on the values; the speculative variant's does, through the fraction of drafts the
fp32 model accepts, which is printed next to it, and once more for the random-init head).

Figures are medians over ``--repeats`` runs; the machine is shared, so the load average is
printed and so is the weights-only floor (the step's matrix-vector products alone) measured in
the same run: a decode step is memory-bound, and the floor tells how much of the step is overhead.

Agreement (``--agree-tokens``): greedy codes of int8 vs fp32 over 300 tokens, (a) free-running
(each model feeds back its own codes; one flip changes everything after it) and (b) teacher-forced
(both see the fp32 trajectory's inputs, so each step is judged on its own). It is measured on a
model whose logits are decisive: the random-init model with its ``lm_head`` replaced by a
prototype head (row r = 8 x the centred unit hidden state the body produces after
previous code perm[r], for a fixed random permutation), so each step has a clear winner; the random-init head's own top-1/top-2 margins are
printed too, to show why it is not used.
"""

from __future__ import annotations

import argparse
import os
import statistics
import time

import torch

from vxlib.llmvox.model import (
    GPT,
    GPTConfig,
    InputEmbedder,
    KVCache,
    SpeculativeGenerator,
    SpeechGenerator,
    quantize_int8,
)
from vxlib.llmvox.text import default_byte_embedding, encode_text

SENTENCE = (
    "The quick brown fox jumps over the lazy dog while streaming speech synthesis keeps the "
    "latency low enough for a natural conversation with a voice assistant running on a laptop."
)


class ConcatCache(KVCache):
    """A cache that is re-allocated one step longer before every step (``torch.cat`` of the past
    with the new slot), reproducing the reference's per-step copy of all keys and values."""

    def __init__(self, config: GPTConfig):
        super().__init__(config, 1, max_len=1)
        self.layers = [(k[:, :, :0], v[:, :, :0]) for k, v in self.layers]
        self.max_len = config.block_size

    def grow(self) -> None:
        self.layers = [
            (torch.cat([k, k.new_zeros(k.shape[:2] + (1, k.shape[3]))], 2),
             torch.cat([v, v.new_zeros(v.shape[:2] + (1, v.shape[3]))], 2))
            for k, v in self.layers
        ]


class NaiveGenerator(SpeechGenerator):
    """The same generator on a :class:`ConcatCache`."""

    def __init__(self, model: GPT, embedder: InputEmbedder):
        super().__init__(model, embedder, max_len=1, eoa_code=None)
        self.cache = ConcatCache(model.config)

    def reset(self) -> None:
        self.cache = ConcatCache(self.model.config)
        self._prev.fill_(-1)

    def step(self, text_id: int, *args, **kwargs) -> int:
        self.cache.grow()
        return super().step(text_id, *args, **kwargs)


def _median_rate(gen: SpeechGenerator, ids: list[int], n: int, repeats: int) -> tuple[float, float, float]:
    """(tokens/s by wall clock, tokens/s by this thread's CPU time, time to first token in ms),
    medians over ``repeats`` runs; the first token is timed inside the same run (a speculative
    generator emits its first codes only after a whole draft-and-verify round). With one intra-op
    thread all work runs on the calling thread, so the CPU-time rate is what an otherwise idle core
    would give (less sensitive to the other processes sharing the machine, though not to their
    use of the memory bus)."""
    rates, cpu_rates, ttft = [], [], []
    for _ in range(repeats):
        t0, c0 = time.perf_counter(), time.thread_time()
        codes = gen.stream(ids, n)
        next(codes)
        ttft.append((time.perf_counter() - t0) * 1e3)
        produced = 1 + sum(1 for _ in codes)
        rates.append(produced / (time.perf_counter() - t0))
        cpu_rates.append(produced / (time.thread_time() - c0))
    return statistics.median(rates), statistics.median(cpu_rates), statistics.median(ttft)


def _floor_steps_per_s(model: GPT, repeats: int, n: int = 100) -> float:
    """Steps/s of the step's weight products alone (every Linear once on a single vector)."""
    linears = [m for m in model.modules() if hasattr(m, "in_features")]
    xs = {m.in_features: torch.randn(1, m.in_features) for m in linears}
    best = []
    with torch.inference_mode():
        for _ in range(repeats):
            t0 = time.perf_counter()
            for _ in range(n):
                for m in linears:
                    m(xs[m.in_features])
            best.append(n / (time.perf_counter() - t0))
    return statistics.median(best)


def _prototype_head(model: GPT, embedder: InputEmbedder, ids: list[int], n: int, scale: float = 8.0) -> GPT:
    """A copy of ``model`` whose greedy output is decisive (see the module docstring).

    Target trajectory: ``n`` distinct random codes. Its hidden states ``h_t`` (reference position
    mode, teacher-forced on the target's own previous codes) are computed once; ``lm_head`` row
    ``target[t]`` is set to ``scale * normalize(h_t - mean_t h_t)``, so at step t the target code
    wins by the gap between ``h_t``'s cosine with its own prototype and with the others'.
    """
    import copy

    m = copy.deepcopy(model)
    V = m.config.vocab_size
    target = torch.randperm(V, generator=torch.Generator().manual_seed(1))[:n]
    text = torch.tensor([ids[t] if t < len(ids) else 384 for t in range(n)]).view(1, n)
    prev = torch.cat([torch.tensor([-1]), target[:-1]]).view(1, n)
    head, m.lm_head = m.lm_head, torch.nn.Identity()  # step() then returns ln_f(x): (1, n, C)
    with torch.inference_mode():
        h = m.step(embedder(text, prev), KVCache(m.config, 1, n), "reference")[0]
        h = torch.nn.functional.normalize(h - h.mean(dim=0), dim=-1)  # drop the shared direction
    with torch.no_grad():
        head.weight[target] = scale * h
    m.lm_head = head
    return m


def _margins(model: GPT, embedder: InputEmbedder, ids: list[int], n: int) -> torch.Tensor:
    """fp32 top-1 minus top-2 logit along the model's own greedy trajectory."""
    gen = SpeechGenerator(model, embedder, max_len=n + 1, eoa_code=None)
    out = []
    with torch.inference_mode():
        for t in range(n):
            gen._text.fill_(ids[t] if t < len(ids) else gen.pad_id)
            logits = model.step(embedder(gen._text, gen._prev), gen.cache)[0, -1]
            top2 = logits.topk(2).values
            out.append(float(top2[0] - top2[1]))
            gen._prev.fill_(int(logits.argmax()))
    return torch.tensor(out)


def _agreement(ref: GPT, test: GPT, embedder: InputEmbedder, ids: list[int], n: int) -> tuple[float, float, int]:
    """(free-running identical fraction, teacher-forced identical fraction, first divergence)."""
    a = SpeechGenerator(ref, embedder, max_len=n + 1, eoa_code=None).generate(ids, n)
    b = SpeechGenerator(test, embedder, max_len=n + 1, eoa_code=None).generate(ids, n)
    free = float((a == b).float().mean())
    diverge = int((a != b).nonzero()[0]) if (a != b).any() else n
    text = torch.tensor([ids[t] if t < len(ids) else 384 for t in range(n)]).view(1, n)
    prev = torch.cat([torch.tensor([-1]), a[:-1]]).view(1, n)
    with torch.inference_mode():
        x = embedder(text, prev)
        la = ref.step(x, KVCache(ref.config, 1, n), "reference").argmax(-1)
        lb = test.step(x, KVCache(test.config, 1, n), "reference").argmax(-1)
    return free, float((la == lb).float().mean()), diverge


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m vxlib.bench llmvox", description=__doc__.split("\n\n")[0])
    ap.add_argument("--threads", type=int, nargs="+", default=[1, 2])
    ap.add_argument("--tokens", type=int, nargs="+", default=[300, 1000])
    ap.add_argument("--repeats", type=int, default=3, help="runs per figure; medians are printed")
    ap.add_argument("--agree-tokens", type=int, default=300)
    ap.add_argument("--skip-naive", action="store_true", help="leave out the concatenating-cache loop")
    ap.add_argument("--draft-tokens", type=int, default=2, help="codes drafted per round by the spec variant")
    args = ap.parse_args(argv)

    torch.manual_seed(0)
    model = GPT(GPTConfig()).eval()
    codebook = torch.randn(4096, 512, generator=torch.Generator().manual_seed(2)) * 0.05
    embedder = InputEmbedder(default_byte_embedding(), codebook)
    ids = encode_text(SENTENCE)
    n_max = max(args.tokens + [args.agree_tokens])
    random_head = model
    model = _prototype_head(random_head, embedder, ids, n_max)  # decisive greedy choices (docstring)
    q8 = quantize_int8(model)
    gens = {"fp32": SpeechGenerator(model, embedder, max_len=n_max + 1, eoa_code=None),
            "int8": SpeechGenerator(q8, embedder, max_len=n_max + 1, eoa_code=None),
            "spec": SpeculativeGenerator(model, embedder, draft=q8, draft_tokens=args.draft_tokens,
                                         max_len=n_max + 1, eoa_code=None)}
    if not args.skip_naive:
        gens = {"naive": NaiveGenerator(model, embedder), **gens}

    print(f"LLMVoX GPT 4x768 ({model.num_params() / 1e6:.2f}M weights w/o position table), torch {torch.__version__}, "
          f"{os.cpu_count()} CPUs, load average {os.getloadavg()[0]:.2f} at start, medians of {args.repeats}")
    cols = " ".join(f"{f'tok/s@{n}':>11}" for n in args.tokens)
    cpu_cols = " ".join(f"{f'cpu@{n}':>9}" for n in args.tokens)
    print(f"{'threads':>7} {'variant':>7} {'floor steps/s':>13} {cols} {'TTFT ms':>8}   {cpu_cols} (1 thread: tok/s by CPU time)")
    for threads in args.threads:
        torch.set_num_threads(threads)
        floors = {"fp32": _floor_steps_per_s(model, args.repeats), "int8": _floor_steps_per_s(q8, args.repeats)}
        floors["naive"] = floors["spec"] = floors["fp32"]
        for name, gen in gens.items():
            runs = [_median_rate(gen, ids, n, args.repeats) for n in args.tokens]
            wall = " ".join(f"{r[0]:>11.1f}" for r in runs)
            cpu = " ".join(f"{r[1]:>9.1f}" if threads == 1 else f"{'-':>9}" for r in runs)
            ttft = statistics.median(r[2] for r in runs)
            extra = f"   draft acceptance {gen.acceptance:.3f}" if isinstance(gen, SpeculativeGenerator) else ""
            print(f"{threads:>7} {name:>7} {floors[name]:>13.1f} {wall} {ttft:>8.2f}   {cpu}{extra}", flush=True)
    print(f"load average {os.getloadavg()[0]:.2f} at end")

    torch.set_num_threads(args.threads[0])
    n = args.agree_tokens
    m_rand = _margins(random_head, embedder, ids, n)
    m_dec = _margins(model, embedder, ids, n)
    print(f"top1-top2 logit margin over {n} greedy steps: random-init head median {m_rand.median():.4f} "
          f"(min {m_rand.min():.5f}); prototype head median {m_dec.median():.3f} (min {m_dec.min():.4f})")
    for label, ref in (("random-init head", random_head), ("prototype head", model)):
        q = quantize_int8(ref)
        free, forced, first = _agreement(ref, q, embedder, ids, n)
        where = f"first difference at step {first}" if first < n else "no difference"
        print(f"int8 vs fp32 greedy, {label}: {100 * free:.1f}% identical free-running "
              f"({where}), {100 * forced:.1f}% teacher-forced")
        plain = SpeechGenerator(ref, embedder, max_len=n + 1, eoa_code=None).generate(ids, n)
        spec = SpeculativeGenerator(ref, embedder, draft=q, draft_tokens=args.draft_tokens, max_len=n + 1, eoa_code=None)
        same = float((spec.generate(ids, n) == plain).float().mean())
        print(f"spec vs fp32 greedy, {label}: {100 * same:.1f}% identical, draft acceptance {spec.acceptance:.3f}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
