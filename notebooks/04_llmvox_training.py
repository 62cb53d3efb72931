# %% [markdown]
# # 04 · LLMVoX training: from a single-voice corpus to a speaking GPT
#
# LLMVoX's speech model is a small GPT that reads one text id per step (ByT5 bytes, word by word)
# together with the codebook vector of the audio token it produced last, and predicts the next
# audio token of a single-codebook codec. This notebook runs the whole training path on a CPU:
#
# 1. a **single-voice TTS corpus** (built here with Piper "joe" when `corpus_dir` is empty) is
#    written in the reference JSON format `{speech_folder, speech_file, answer_text, id}`;
# 2. the **codec** is the embedded WORLD tokenizer (fitted here on the training sentences in a
#    few minutes, 75 tokens/s at 24 kHz) or the official WavTokenizer files;
# 3. the audio is **tokenised once** into a cache (the reference re-encodes it in every step);
# 4. the GPT is **trained** by `vxlib.llmvox.train` (the same loop as `python -m vxlib.llmvox.train`
#    and `torchrun`), with a held-out validation split;
# 5. it **speaks held-out sentences**, which Whisper transcribes: its WER is shown next to the WER of
#    the codec's own resynthesis (the ceiling any model trained on these tokens can reach) and of
#    the original audio.
#
# The tiny model trained for a few CPU minutes learns the codec's token statistics (watch the
# validation loss), not intelligible speech: expect a WER near 100% for it. The paper's model is
# the `default` size trained for days on GPUs (`experiments/llmvox/config.json`).
#
# Run it interactively, or in batch with `./vx run 04`.

# %% tags=["parameters"]
run_dir = "../experiments/runs/interactive"  # where the corpus, codec, checkpoints and metrics go
corpus_dir = ""  # a vxlib.data.corpus corpus (single voice, its train part is used); empty builds Piper joe
corpus_sentences = 0  # how many sentences to synthesise when building (0 for all of data/sentences.txt)
codec = "world"  # world (embedded, fitted here) or wavtokenizer (official files below)
codec_dir = ""  # a fitted WorldCodec directory to reuse; empty fits one under run_dir
codebook_size = 4096  # codes of a WorldCodec fitted here (WavTokenizer has 4096); smaller only for smoke tests
wavtokenizer_config = ""  # official YAML, for codec wavtokenizer
wavtokenizer_ckpt = ""  # official .ckpt, for codec wavtokenizer
model_size = "tiny"  # tiny (CPU minutes) or default (the paper's 4 x 768)
steps = 300  # optimiser steps
eval_sentences = 5  # held-out sentences spoken by the model and scored by Whisper
seed = 0
tracking = "none"  # none or wandb (offline unless WANDB_MODE is set to online)

# %%
import time
from pathlib import Path

import matplotlib.pyplot as plt
import pandas as pd
import torch
from IPython.display import display

from vxlib import asr, audio, display as vxdisplay
from vxlib.data.corpus import build_corpus
from vxlib.eval.text import error_rates
from vxlib.llmvox import data as lvdata
from vxlib.llmvox.model import InputEmbedder, SpeechGenerator, load_checkpoint
from vxlib.llmvox.text import encode_text
from vxlib.llmvox.train import TrainConfig, prepare_data, train
from vxlib.run import REPO_ROOT, NotebookRecord

run_dir = Path(run_dir)
work = run_dir / "llmvox"
record = NotebookRecord(run_dir, "04_llmvox_training")
recipe = {"tiny": "llmvox_tiny", "default": "llmvox"}[model_size]
config_path = REPO_ROOT / "experiments" / recipe / "config.json"
base = TrainConfig.from_file(config_path)
if codec == "world":
    codec_spec = {"type": "world", "dir": str(Path(codec_dir) if codec_dir else work / f"world_codec_{base.n_embd}")}
    text_dim = base.text_embedding_dim
    codec_feature_dim = base.n_embd - text_dim  # the embedded codec is fitted at the width the model needs
elif codec == "wavtokenizer":
    codec_spec = {"type": "wavtokenizer", "config": wavtokenizer_config, "ckpt": wavtokenizer_ckpt}
    codec_feature_dim = 512
    text_dim = base.n_embd - codec_feature_dim
    if text_dim <= 0:
        raise ValueError(f"model_size {model_size!r} has n_embd {base.n_embd}: no room for 512-d WavTokenizer features "
                         "next to the text embedding; use model_size 'default'")
else:
    raise ValueError(f"codec must be 'world' or 'wavtokenizer', got {codec!r}")
torch.manual_seed(seed)
print(f"recipe {config_path.relative_to(REPO_ROOT)}; run_dir = {run_dir.resolve()}")

# %% [markdown]
# ## The corpus, in the reference JSON format
# One voice, 24 kHz. The held-out split is chosen by a seeded hash of each utterance id, so it does
# not move when sentences are added; the codec is fitted on the training part only.

# %%
if corpus_dir:
    corpus_train = Path(corpus_dir) / "train"
else:
    summary = build_corpus(work / "corpus", voices=["piper:joe"], sample_rate=24000, num_dev_speakers=0,
                           sentences_per_voice=corpus_sentences or None, seed=seed, progress=False)
    corpus_train = summary.train_dir
    display(pd.DataFrame(summary.table()))
dataset_json = lvdata.dataset_from_corpus(corpus_train, work / "dataset.json")
records = lvdata.read_dataset(dataset_json)
train_records, val_records = lvdata.split_records(records, base.val_fraction, seed)
print(f"{dataset_json}: {len(records)} utterances -> {len(train_records)} train, {len(val_records)} held out")

# %% [markdown]
# ## The codec
# The embedded WORLD codec: k-means over WORLD vocoder frames (spectral envelope cepstra, band
# aperiodicity, log f0, voicing), 4096 codes at 75 tokens/s; its codebook vectors are what the GPT
# reads for the previous token. A small learned envelope decoder, trained in the same fit, turns the
# codes around each token into the spectral envelope four times per token (docs/codec.md). It is a
# stand-in for WavTokenizer that needs no download.

# %%
t0 = time.perf_counter()
if codec == "world":
    from vxlib.codec.world_codec import WorldCodec, WorldCodecConfig

    if (Path(codec_spec["dir"]) / "config.json").exists():
        audio_codec = WorldCodec.from_pretrained(codec_spec["dir"])
        print(f"loaded the WorldCodec in {codec_spec['dir']}")
    else:
        wavs = (audio.load(r.audio_path, sr=24000)[0] for r in train_records)
        audio_codec = WorldCodec.fit(wavs, WorldCodecConfig(feature_dim=codec_feature_dim, codebook_size=codebook_size, seed=seed), log=print)
        audio_codec.save(codec_spec["dir"])
        print(f"fitted a {audio_codec.codebook_size}-code WorldCodec in {time.perf_counter() - t0:.0f} s")
else:
    audio_codec = lvdata.load_codec(codec_spec)
codec_seconds = time.perf_counter() - t0

# %% [markdown]
# ## Tokenise once
# Every utterance is encoded into `<out_dir>/token_cache/codes.pt`; training (and any later run
# with the same codec) reads the cache. Real occurrences of code 453 are deleted and 453 is
# appended as end-of-audio, as in the reference.

# %%
cfg = base.replace(
    dataset=str(dataset_json), codec=codec_spec, text_embedding="default", text_embedding_dim=text_dim,
    out_dir=str(work / f"train_{model_size}"), max_iters=steps, lr_decay_iters=steps,
    warmup_iters=min(base.warmup_iters, max(1, steps // 10)), eval_interval=max(1, steps // 6),
    checkpoint_interval=steps, tracking=tracking, seed=seed,
)
t0 = time.perf_counter()
prepared = prepare_data(cfg, audio_codec)
tokenise_seconds = time.perf_counter() - t0
n_tokens = sum(len(e) for e in prepared.train)
print(f"tokenised {prepared.encoded} utterances in {tokenise_seconds:.1f} s: {n_tokens} training tokens "
      f"({n_tokens / audio_codec.frame_rate / 60:.1f} min of audio), {prepared.eoa_removed} real EOA codes deleted")

# %% [markdown]
# ## Train
# AdamW (decay on matrices only), warm-up then cosine, gradient clipping; the validation loss is
# the token-weighted cross-entropy over the whole held-out split.

# %%
t0 = time.perf_counter()
result = train(cfg, resume=False, codec=audio_codec)
train_seconds = time.perf_counter() - t0
train_curve = [(h["iter"], h["train_loss"]) for h in result.history if "train_loss" in h]
val_curve = [(h["iter"], h["val_loss"]) for h in result.history if "val_loss" in h]

fig, ax = plt.subplots(figsize=(8, 3.5))
ax.plot(*zip(*train_curve), label="train (per step)", alpha=0.7)
ax.plot(*zip(*val_curve), "o-", label="validation (held-out)")
ax.set_xlabel("step")
ax.set_ylabel("cross-entropy (nats)")
ax.set_title(f"LLMVoX {model_size}: {steps} steps in {train_seconds / 60:.1f} min")
ax.legend()
fig.tight_layout()
record.figure("loss", fig)
plt.show()

# %% [markdown]
# ## Speak held-out sentences
# Greedy decoding on a preallocated KV cache, one audio token per text id, then PAD until the model
# emits end-of-audio (capped at twice the real utterance's length). Positions run 0..T-1 as in
# training (`position_mode="standard"`).

# %%
model = load_checkpoint(result.checkpoint)
generator = SpeechGenerator(model, InputEmbedder(prepared.text_table, prepared.codebook),
                            max_len=cfg.block_size, position_mode="standard")
sr = audio_codec.sample_rate
held_out = val_records[:eval_sentences]
val_examples = {e.id: e for e in prepared.val}
rows, players = [], {}
for r in held_out:
    original, _ = audio.load(r.audio_path, sr=sr)
    resynth = lvdata.codec_decode(audio_codec, val_examples[r.id].targets[:-1])  # the cached codes, EOA dropped
    codes = generator.generate(encode_text(r.text), max_new_tokens=2 * len(val_examples[r.id]))
    spoken = lvdata.codec_decode(audio_codec, codes) if len(codes) else torch.zeros(sr // 10).numpy()
    rows.append({"id": r.id, "text": r.text, "original": asr.transcribe(original, sr),
                 "codec resynthesis": asr.transcribe(resynth, sr), "model": asr.transcribe(spoken, sr),
                 "model tokens": len(codes), "real tokens": len(val_examples[r.id]) - 1})
    players[r.id] = {"original": (original, sr), "codec resynthesis": (resynth, sr), "model": (spoken, sr)}
display(vxdisplay.audio_table(dict(list(players.items())[:3])))

# %% [markdown]
# ## Word error rates (Whisper tiny.en, numbers spelled out)

# %%
texts = [r["text"] for r in rows]
wer = {system: error_rates(texts, [r[system] for r in rows]).wer for system in ("original", "codec resynthesis", "model")}
table = pd.DataFrame([{"audio": k, "WER": round(v, 3)} for k, v in wer.items()])
display(table)
display(pd.DataFrame(rows))
record.table("wer", table)
record.table("transcripts", rows)
record.metrics({
    "model_size": model_size, "codec": codec, "steps": result.iter_num,
    "train_utterances": len(prepared.train), "val_utterances": len(prepared.val), "train_tokens": n_tokens,
    "final_train_loss": train_curve[-1][1], "final_val_loss": val_curve[-1][1], "best_val_loss": result.best_val_loss,
    "train_minutes": train_seconds / 60, "tokenise_seconds": tokenise_seconds, "codec_seconds": codec_seconds,
    "wer_original": wer["original"], "wer_codec_resynthesis": wer["codec resynthesis"], "wer_model": wer["model"],
})
print(record.data["metrics"])
