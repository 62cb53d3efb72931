# %% [markdown]
# # 01 · Dataset creation: source speech → teacher → LLVC training pairs
#
# LLVC learns *any-to-one* conversion from pairs: a source utterance and **the same utterance converted into the
# target voice by a heavier teacher**. In the paper the sources are LibriSpeech train-clean-360 (dev from
# dev-clean, speakers disjoint) and the teacher is an RVC v2 model (`f_8312`, f0_up_key 12, rmvpe pitch).
#
# This notebook builds such a dataset in the reference layout `<dataset>/{train,val,dev}/PREFIX_original.wav` +
# `PREFIX_converted.wav` (16 kHz mono, equal lengths) with a manifest and a dataset card.
#
# | parameter | embedded default (`tiny`) | paper (`paper` profile) |
# |---|---|---|
# | `source` | `local`: a multi-speaker corpus synthesised with this machine's voices (espeak-ng, flite, festival, Piper) | `librispeech`: train-clean-360 / dev-clean |
# | `teacher` | `world`: a deterministic WORLD-vocoder teacher to a fixed target profile | `rvc`: an official RVC `.pth` + ContentVec checkpoint |
#
# The embedded default is **not** the paper's data: its voices are synthetic and its teacher is DSP. It exercises
# exactly the same code path, and its effect on the speaker is measured below.

# %% tags=["parameters"]
run_dir = "../experiments/runs/interactive"
seed = 0
source = "local"  # local or librispeech
voices = []  # local voices as backend:name specs; empty means the default catalogue
sentences_per_voice = 12
num_dev_speakers = 2  # held-out speakers for the dev split
librispeech_train = ""  # e.g. ../data/LibriSpeech/train-clean-360
librispeech_dev = ""  # e.g. ../data/LibriSpeech/dev-clean
teacher = "world"  # world or rvc
f0_method = "dio"  # world: dio or harvest; rvc: rmvpe (the paper, needs rmvpe_path), harvest, dio, crepe
f0_up_key = None  # semitones; None lets the world teacher map pitch to its target profile
rvc_model_path = ""  # official RVC synthesizer .pth (teacher rvc)
hubert_path = ""  # ContentVec / HuBERT fairseq checkpoint (teacher rvc)
rmvpe_path = ""
val_percent = 0.1  # the paper used 0.02 of 360 h; tiny sets need a larger share to have a val split
dataset_dir = ""  # empty means run_dir/data/pairs
workers = 2
show_pairs = 3  # pairs plotted and played
measure_effect = True  # Resemblyzer similarity, f0 ratio and Whisper WER of the teacher on dev pairs
effect_limit = 12

# %%
from pathlib import Path

import matplotlib.pyplot as plt
import pandas as pd
from IPython.display import Markdown, display

from vxlib import audio, display as vxdisplay
from vxlib.data import corpus, make_pairs as mp, pairs
from vxlib.data.effect import measure_dataset_effect
from vxlib.pitch import extract_f0
from vxlib.run import NotebookRecord

run_dir = Path(run_dir)
dataset_dir = Path(dataset_dir) if dataset_dir else run_dir / "data" / "pairs"
corpus_dir = run_dir / "data" / "corpus"
record = NotebookRecord(run_dir, "01_dataset_creation_rvc")
print(f"dataset -> {dataset_dir.resolve()}")

# %% [markdown]
# ## 1 · Source speech
# The local corpus gives every voice the same sentences (from `data/sentences.txt`), keeps whole speakers out of
# train for `dev`, and is resumable: a second run only synthesises missing files.

# %%
if source == "local":
    built = corpus.build_corpus(corpus_dir, voices=voices or None, sentences_per_voice=sentences_per_voice,
                                num_dev_speakers=num_dev_speakers, seed=seed, workers=workers)
    train_src, dev_src = built.train_dir, built.dev_dir
    display(pd.DataFrame(built.table()))
    if built.skipped_voices:
        print("voices not available here:", built.skipped_voices)
    record.metric("corpus_seconds", round(built.seconds, 1))
    record.metric("voices_used", len(built.voices))
    record.table("corpus", built.table())
elif source == "librispeech":
    if not (librispeech_train and librispeech_dev):
        raise ValueError("source librispeech needs librispeech_train and librispeech_dev directories")
    train_src, dev_src = Path(librispeech_train), Path(librispeech_dev)
else:
    raise ValueError(f"unknown source {source!r} (local or librispeech)")

# %% [markdown]
# ## 2 · The teacher
# Both teachers implement one contract: `convert(wav, sr)` returns audio at the same rate, of the same length,
# time-aligned with the input.

# %%
teacher_options = {"f0_method": f0_method, "f0_up_key": f0_up_key}
if teacher == "rvc":
    teacher_options.update(model_path=rvc_model_path or None, hubert_path=hubert_path or None,
                           rmvpe_path=rmvpe_path or None)
vc_teacher = mp.make_teacher(teacher, **teacher_options)
print(vc_teacher.describe())

# %% [markdown]
# ## 3 · Pairs
# The writer mirrors the reference `_infer_folder` (val drawn from train with `val_percent` and a seed; dev from the
# held-out speakers); for LibriSpeech-scale data run it sharded from the command line:
# `python -m vxlib.data.make_pairs ... --num_shards N --shard_index i`, then `--merge_only`.

# %%
result = mp.make_pairs(train_src, dev_src, dataset_dir, vc_teacher, val_percent=val_percent, random_seed=seed,
                       workers=workers)
report = pairs.validate_dataset(dataset_dir)
card = result["card"]
card_rows = [{"split": s, "pairs": v["pairs"], "hours": v["hours"], "speakers": v["num_speakers"]}
             for s, v in card["splits"].items()]
display(pd.DataFrame(card_rows))
print(f"{result['written']} pairs written in {result['seconds']} s; validation ok: {report.ok}")
record.table("dataset_card", card_rows)
record.metrics({"pairs_seconds": result["seconds"], "dataset_ok": report.ok,
                **{f"{r['split']}_pairs": r["pairs"] for r in card_rows},
                **{f"{r['split']}_hours": r["hours"] for r in card_rows}})

# %% [markdown]
# ## 4 · Original vs converted
# Spectrograms with the f0 track (harvest) drawn on top: the teacher moves the pitch and the formants while the
# timing of every phoneme stays put.

# %%
examples = pairs.list_pairs(dataset_dir, "dev")[:show_pairs]
fig, axes = plt.subplots(len(examples), 2, figsize=(13, 2.6 * len(examples)), squeeze=False)
players = {}
for (prefix, orig_path, conv_path), (ax_o, ax_c) in zip(examples, axes):
    orig, sr = audio.load(orig_path)
    conv, _ = audio.load(conv_path)
    vxdisplay.plot_spectrogram(ax_o, orig, sr, f"{prefix} original", f0=extract_f0(orig, "harvest"))
    vxdisplay.plot_spectrogram(ax_c, conv, sr, f"{prefix} converted", f0=extract_f0(conv, "harvest"))
    players[prefix] = {"original": (orig, sr), "converted": (conv, sr)}
fig.tight_layout()
record.figure("original_vs_converted", fig)
plt.show()
display(vxdisplay.audio_table(players))

# %% [markdown]
# ## 5 · What the teacher does to the speaker
# A teacher must change *who* speaks and keep *what* is said: Resemblyzer similarity source→converted should drop
# well below WORLD copy-synthesis (which changes nothing), the f0 ratio shows the pitch move, and Whisper should
# still understand the converted speech.

# %%
if measure_effect:
    effect = measure_dataset_effect(dataset_dir, "dev", limit=effect_limit)
    rows = [{"measure": "Resemblyzer similarity source→converted", "value": effect["similarity"]},
            {"measure": "… after WORLD copy-synthesis (no conversion)", "value": effect["copy_synthesis_similarity"]},
            {"measure": "median f0 ratio converted / source", "value": effect["f0_ratio"]},
            {"measure": "Whisper WER, source", "value": effect.get("wer_original")},
            {"measure": "Whisper WER, converted", "value": effect.get("wer_converted")}]
    display(pd.DataFrame(rows))
    record.table("teacher_effect", rows)
    record.metrics({k: effect[k] for k in ("similarity", "copy_synthesis_similarity", "f0_ratio",
                                           "wer_original", "wer_converted") if k in effect})
display(Markdown(f"Dataset ready: `{dataset_dir}` — pass it to notebook 02 as `dataset_dir`."))
