# %% [markdown]
# # 03 · Streaming evaluation: latency against quality, in the shape of the LLVC paper's table
#
# LLVC's claim is a trade: a small causal student gives up little of its teacher's quality for an
# end-to-end latency of about 20 ms on a CPU, where the teacher itself, streamed the usual way, needs
# 100 ms blocks. This notebook measures both sides of that trade on one split of the paired data
# (notebook 01) with the generator trained in notebook 02. Every row goes through the same path:
# the system converts each source file, its outputs are written, and the metrics harness
# (`vxlib.eval`) scores the files.
#
# | row | what it is |
# |---|---|
# | ground truth | the teacher outputs stored in the data set: what LLVC was trained to imitate |
# | teacher | the teacher on whole utterances (the quality ceiling of the distillation) |
# | teacher + SOLA | the teacher on 100 ms blocks joined by SOLA crossfades (256 samples, 12 ms search, 1024 samples of extra context): the streaming setup of the paper's RVC / QuickVC baselines |
# | LLVC offline | the generator in one pass over the utterance |
# | LLVC exact cf=n | streaming in 208·n-sample chunks (13·n ms), equal to the offline output |
# | LLVC reference cf=n | the reference `infer_stream`, sample for sample, including its prenet defect |
#
# Columns: end-to-end latency (chunk + look-ahead + compute), speed (audio time / compute time),
# DNSMOS, Resemblyzer similarity to the ground truth, Whisper WER against the corpus text, and the
# mel-cepstral distortion against the ground truth. On the embedded `tiny` profile the teacher is the
# WORLD DSP teacher and the generator a few minutes old: the *numbers* are not the paper's, the
# *measurement* is. With the user's RVC checkpoints (`teacher = "rvc"`) and the released
# `G_500000.pth` the same notebook produces the paper's rows.
#
# Run it interactively, or in batch with `./vx run 03`.

# %% tags=["parameters"]
run_dir = "../experiments/runs/interactive"  # outputs, figures and metrics go here
dataset_dir = ""  # pairs from notebook 01; empty uses the run's data/pairs
llvc_checkpoint = ""  # a G_<step>.pth or notebook 02's training folder (its latest G); empty means run_dir/llvc_training
llvc_config = ""  # the generator's config.json; empty takes the training folder's config.json
teacher = "world"  # world or rvc: the teacher that made the data set (checked against its card below)
f0_method = "dio"  # world: dio or harvest; rvc: harvest, dio, crepe (rmvpe needs rmvpe_path)
f0_up_key = None  # semitones; None lets the world teacher map pitch to its target profile
rvc_model_path = ""  # official RVC synthesizer .pth (teacher rvc)
hubert_path = ""  # ContentVec / HuBERT fairseq checkpoint (teacher rvc)
rmvpe_path = ""
split = "dev"  # dev holds unseen speakers, as in the paper's table
max_utterances = 4  # the first N pairs of the split by name; None scores them all
chunk_factors = [1, 2, 4]  # LLVC streaming chunk is 208 x factor samples (13 ms x factor)
threads = 1  # torch CPU threads for the conversions: the timings are for this many
metrics = ["resemblyzer", "dnsmos", "wer", "mcd"]  # any of vxlib.eval.METRICS (wvmos in the eval environment)
show_utterances = 1  # utterances plotted and played
seed = 0

# %%
import json
from pathlib import Path

import matplotlib.pyplot as plt
from matplotlib.ticker import NullFormatter, ScalarFormatter
import numpy as np
import pandas as pd
import torch
from IPython.display import Markdown, display

from vxlib import audio, display as vxdisplay
from vxlib.data.make_pairs import make_teacher
from vxlib.eval import markdown_table, results_table
from vxlib.eval.baselines import (evaluation_set, llvc_systems, output_differences, reuse_scores, run_system,
                                  score_ground_truth, score_run, slug, teacher_systems)
from vxlib.llvc import load_model
from vxlib.llvc.train import resolve_generator
from vxlib.run import NotebookRecord

run_dir = Path(run_dir)
record = NotebookRecord(run_dir, "03_streaming_evaluation")
dataset_dir = Path(dataset_dir) if dataset_dir else run_dir / "data" / "pairs"
work_dir = run_dir / "streaming_evaluation"  # evaluation-set links, one output folder per system, results
llvc_checkpoint = resolve_generator(llvc_checkpoint or run_dir / "llvc_training")  # notebook 02's latest G
training_dir = llvc_checkpoint.parent.parent if llvc_checkpoint.parent.name == "checkpoints" else llvc_checkpoint.parent
llvc_config = Path(llvc_config) if llvc_config else training_dir / "config.json"
torch.set_num_threads(threads)
torch.manual_seed(seed)  # every system here is deterministic; this pins anything that is not
print(f"data {dataset_dir} ({split}); generator {llvc_checkpoint} with {llvc_config}; {threads} thread(s)")

# %% [markdown]
# ## The evaluation set
# The first `max_utterances` pairs of the split. The harness pairs files by utterance name, so the two
# halves of each pair are linked into separate folders: `source` (system input) and `ground_truth`.

# %%
evalset = evaluation_set(dataset_dir, split, work_dir / "eval_set", max_utterances=max_utterances)
utterances = pd.DataFrame([{"utterance": key, "seconds": audio.info(path).duration,
                            "text": (evalset.texts or {}).get(key, "(transcribed from the source)")}
                           for key, path in evalset.sources.items()]).set_index("utterance")
display(utterances)
sr = evalset.sample_rate
print(f"{len(utterances)} utterances, {utterances.seconds.sum():.1f} s at {sr} Hz")

# %% [markdown]
# ## The systems
# The teacher is built from the same parameters as notebook 01 and compared with the settings
# recorded in the data set's card: a different teacher would make the "teacher" rows meaningless.

# %%
teacher_options = {"f0_method": f0_method, "f0_up_key": f0_up_key}
if teacher == "rvc":
    teacher_options.update(model_path=rvc_model_path or None, hubert_path=hubert_path or None,
                           rmvpe_path=rmvpe_path or None)
vc_teacher = make_teacher(teacher, **teacher_options)
card_path = dataset_dir / "dataset_card.json"
card_teacher = json.loads(card_path.read_text())["settings"]["teacher"] if card_path.exists() else None
this_teacher = json.loads(json.dumps(vc_teacher.describe()))
teacher_matches = card_teacher == this_teacher
if not teacher_matches:
    differing = sorted(k for k in set(this_teacher) | set(card_teacher or {})
                       if this_teacher.get(k) != (card_teacher or {}).get(k))
    print(f"WARNING: this teacher differs from the one in {card_path} in {differing}")
model, model_sr = load_model(llvc_checkpoint, llvc_config)
if model_sr != sr:
    raise ValueError(f"{llvc_config}: the generator works at {model_sr} Hz, the data set at {sr} Hz")
systems = teacher_systems(vc_teacher, sr) + llvc_systems(model, sr, chunk_factors=chunk_factors)
print(f"teacher {this_teacher} (matches the data set's card: {teacher_matches})")
print("systems:", ", ".join(s.name for s in systems))

# %% [markdown]
# ## Convert
# Streaming systems get the audio one step at a time (100 ms for SOLA, 13·n ms for LLVC), back to
# back as fast as they take it; each step's compute time is recorded. Offline systems get whole
# utterances.

# %%
runs = {s.name: run_system(s, evalset.sources, work_dir / "systems" / s.slug) for s in systems}
timing = pd.DataFrame({name: run.summary() for name, run in runs.items()}).T
display(timing[[c for c in ("speed", "chunk_ms_p50", "chunk_ms_p99", "algorithmic_latency_ms", "e2e_latency_ms_mean",
                            "underruns", "clipped_samples") if c in timing]].round(2))

# %% [markdown]
# ## Streaming equals offline (exact mode)
# The exact mode must reproduce the offline conversion for every chunk factor; the reference mode
# does not, because it sends each chunk's 2L-sample overlap through the prenet a second time.

# %%
offline = runs["LLVC offline"]
differences = pd.DataFrame({name: output_differences(run, offline) for name, run in runs.items()
                            if name.startswith(("LLVC exact", "LLVC reference"))})
display(differences.T.assign(max=differences.max()).style.format("{:.2e}"))
exact_max = float(differences[[c for c in differences if "exact" in c]].to_numpy().max())
reference_max = float(differences[[c for c in differences if "reference" in c]].to_numpy().max())
print(f"max |exact streaming - offline| = {exact_max:.2e}; max |reference streaming - offline| = {reference_max:.2e}")
if exact_max > 1e-4:
    raise AssertionError(f"exact streaming differs from offline conversion by {exact_max:.3g}")
record.metrics({"exact_vs_offline_max_abs": exact_max, "reference_vs_offline_max_abs": reference_max})

# %% [markdown]
# ## Score
# Every system's files against the ground truth. The exact-mode rows share the offline row's
# quality figures (their audio was just shown to be the same) and keep their own timing.

# %%
offline_result = score_run(offline, evalset, metrics)
results = [score_ground_truth(evalset, metrics)]
for name, run in runs.items():
    if name == "LLVC offline":
        results.append(offline_result)
    elif name.startswith("LLVC exact"):
        results.append(reuse_scores(run, offline, offline_result))
    else:
        results.append(score_run(run, evalset, metrics))
by_name = {r.name: r for r in results}

# %% [markdown]
# ## The latency / quality table
# Rows and columns in the order of the paper's Table 1. Latency is algorithmic (chunk + look-ahead)
# plus the measured compute per chunk: LLVC's look-ahead is L = 16 samples (the reference formula
# counts 2L and reads 1 ms higher); SOLA holds back its 256-sample crossfade (the reference counts
# only the 100 ms window). DNSMOS is not the paper's WVMOS, and MCD counts every frame, silence
# included: compare rows with each other, not with other papers.

# %%
table = results_table(results)
paper_columns = [c for c in ("e2e_latency_ms_mean", "speed", "dnsmos_ovrl", "wvmos", "resemblyzer", "wer", "mcd_db")
                 if c in table]
display(table[paper_columns].round(3))
table_markdown = markdown_table(results)
display(Markdown(table_markdown))
(work_dir / "results.md").write_text(table_markdown + "\n")
pd.DataFrame([row for r in results for row in r.rows]).to_csv(work_dir / "utterances.csv", index=False)
record.table("latency_quality", table.reset_index().astype(object).where(table.reset_index().notna(), None))

# %% [markdown]
# ## Latency against quality over chunk factors
# Larger chunks amortise per-call overhead (faster) at the price of latency; the exact mode's quality
# does not depend on the chunk, the reference mode's does a little. The teacher streamed with SOLA is
# the far-right point.

# %%
quality = next((c for c in ("mcd_db", "dnsmos_ovrl", "resemblyzer", "wer") if c in table), "speed")
fig, (ax_q, ax_s) = plt.subplots(1, 2, figsize=(13, 3.8))
for mode, marker in (("exact", "o"), ("reference", "s")):
    rows = table.loc[[f"LLVC {mode} cf={cf}" for cf in chunk_factors]]
    ax_q.plot(rows.e2e_latency_ms_mean, rows[quality], marker=marker, label=f"LLVC {mode}")
    ax_s.plot(chunk_factors, rows.speed, marker=marker, label=f"LLVC {mode}")
    for cf, (x, y) in zip(chunk_factors, zip(rows.e2e_latency_ms_mean, rows[quality])):
        if mode == "exact":  # the reference mode's points sit beside them
            ax_q.annotate(f"cf={cf}", (x, y), textcoords="offset points", xytext=(4, 4), fontsize=8)
sola = table.loc["teacher + SOLA"]
ax_q.plot(sola.e2e_latency_ms_mean, sola[quality], "k^", label="teacher + SOLA")
for name, color, line in (("teacher", "k", "--"), ("LLVC offline", "C0", ":")):
    if np.isfinite(table.loc[name, quality]):
        ax_q.axhline(table.loc[name, quality], color=color, ls=line, lw=1, label=name)
ax_q.set(xscale="log", xlabel="end-to-end latency (ms, log scale)", ylabel=quality, title=f"{quality} against latency")
ax_q.xaxis.set_major_formatter(ScalarFormatter())
ax_q.xaxis.set_minor_formatter(NullFormatter())
ax_s.axhline(1.0, color="grey", lw=1, ls=":")
ax_s.set(xlabel="chunk factor", ylabel="speed (x real time)", title=f"speed, {threads} thread(s)", xticks=chunk_factors)
for ax in (ax_q, ax_s):
    ax.legend(fontsize=8)
fig.tight_layout()
record.figure("latency_quality", fig)
plt.show()

# %% [markdown]
# ## Spectrograms
# Source, ground truth, the streamed teacher and LLVC. SOLA's joins every 100 ms and the
# reference mode's prenet defect, if audible, show up here first.

# %%
shown = list(evalset.sources)[:show_utterances]
compare = ["ground truth", "teacher + SOLA", "LLVC offline", f"LLVC reference cf={chunk_factors[0]}"]
for key in shown:
    items = [("source", *audio.load(evalset.sources[key]))]
    items.append(("ground truth", *audio.load(evalset.ground_truth_dir / f"{key}.wav")))
    items += [(name, *audio.load(runs[name].files[key])) for name in compare[1:]]
    fig = vxdisplay.plot_audio([(f"{key}: {name}", wav, rate) for name, wav, rate in items])
    record.figure(f"spectrograms_{key}", fig)
    plt.show()

# %% [markdown]
# ## Listen
# Every system on the shown utterances.

# %%
players = {}
for key in shown:
    row = {"source": audio.load(evalset.sources[key]), "ground truth": audio.load(evalset.ground_truth_dir / f"{key}.wav")}
    row.update({name: audio.load(run.files[key]) for name, run in runs.items()})
    players[key] = row
display(vxdisplay.audio_table(players))

# %% [markdown]
# ## Record the results
# The table goes to the batch summary with a few headline figures per system.

# %%
headline = {}
for r in results:
    for key in paper_columns:
        value = r.summary.get(key)
        if value is not None and np.isfinite(value):
            headline[f"{slug(r.name)}__{key}"] = float(value)
record.metrics({"utterances": len(evalset.sources), "audio_s": float(utterances.seconds.sum()),
                "teacher_matches_dataset": teacher_matches, "threads": threads, **headline})
print(table_markdown)
print(f"results: {work_dir / 'results.md'}, per utterance: {work_dir / 'utterances.csv'}")

# %% [markdown]
# ## Reading the table, and beyond this notebook
# - **Latency.** LLVC's row is 13·n ms of chunk + 1 ms look-ahead + compute; the SOLA baseline pays a
#   100 ms block + 16 ms crossfade + the teacher's compute per block, and its teacher converts 192 ms
#   windows every 100 ms, so it is about twice as expensive as the offline teacher per second of audio.
#   Under-runs in the timing table mean compute did not keep up with real time at this thread count.
# - **Quality.** The teacher and ground truth rows bound what distillation can reach; the SOLA row shows
#   what chunking costs an utterance-level teacher (the WORLD teacher also normalises pitch and level
#   per window, which a whole utterance hides).
# - The paper's rows: `teacher = "rvc"` with `rvc_model_path` (`f_8312_no_f0-300.pth` for the No-F0 RVC
#   baseline), `hubert_path`, and `llvc_checkpoint` = the released `G_500000.pth` with `experiments/llvc/config.json`.
#   QuickVC is not implemented in vxlib. WVMOS (the paper's MOS proxy) runs in the evaluation environment.
# - The same scoring from a shell: `python -m vxlib.eval --converted <run_dir>/streaming_evaluation/systems/<system>
#   --ground_truth <run_dir>/streaming_evaluation/eval_set/ground_truth --concat_ground_truth --metrics ...`.
