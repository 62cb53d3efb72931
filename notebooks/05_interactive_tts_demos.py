# %% [markdown]
# # 05 · Interactive streaming TTS: text → speech (→ target voice) while the text is written
#
# LLMVoX speaks text *as it arrives*: text pieces (from an LLM, or here a scripted source that
# streams a fixed text at a set word rate) are split into sentences that alternate between two GPT
# replicas; each replica turns its sentence into speech tokens and flushes audio in chunks that
# grow (10 → 30 → 90 … tokens), decoded with left context, look-ahead and a crossfade so the
# streamed waveform continues seamlessly. Optionally every chunk goes on through the LLVC
# streaming converter (24 → 16 kHz), so the answer is heard in the LLVC target voice.
#
# 1. **Batch part** (also what `./vx run 05` executes): a fixed prompt is rendered to WAV files,
#    with and without the LLVC stage, and a per-chunk latency timeline is drawn.
# 2. **Interactive part**: a text box → audio streamed into an audio widget as it is generated, a
#    toggle for the LLVC stage and the timeline of the last request; it drives the in-process
#    streamer or a running server (`python -m vxlib.serve`, parameters `ip` and `port`).
#
# With `gpt_checkpoint` empty the speech model is an **untrained, randomly initialised GPT**: it
# babbles. That is enough to see the streaming machinery and its latency, not speech quality; use
# notebook 04's checkpoint for a model that has learned something.

# %% tags=["parameters"]
run_dir = "../experiments/runs/interactive"  # WAVs, figures and metrics go here
gpt_checkpoint = ""  # notebook 04's ckpt.pt (under run_dir/llmvox/train_tiny); empty uses an UNTRAINED random GPT
codec = "world"  # world, wavtokenizer or wavtokenizer-random (the codec when the checkpoint records none)
codec_dir = ""  # a fitted WorldCodec directory; empty takes the one notebook 04 fitted under run_dir
wavtokenizer_config = ""  # official YAML, for codec wavtokenizer
wavtokenizer_ckpt = ""  # official .ckpt, for codec wavtokenizer
llvc_checkpoint = ""  # a G_<step>.pth or notebook 02's training folder (its latest G); empty leaves the LLVC stage out
llvc_config = ""  # the generator's config.json; empty takes the training folder's config.json
prompt = "Streaming speech starts before the text is finished. Each sentence goes to the other replica! Can you hear the seams?"
words_per_s = 20.0  # the scripted source's writing speed (an LLM writes about this fast)
initial_dump_size_1 = 10  # first chunk of replica A in tokens (the reference default)
initial_dump_size_2 = 160  # first chunk of replica B
max_pad_tokens = 150  # PAD steps allowed after a sentence's text (an untrained model rarely stops by itself)
gpt_precision = "fp32"  # fp32 (the reference) or int8 (CPU: ~2.5x faster GPT steps)
decoder_precision = "fp32"  # fp32 or int8 (WavTokenizer decoder on CPU: ~3x faster short chunks)
ip = ""  # a running vxlib.serve server for the interactive demo; empty drives the in-process streamer
port = 5003
threads = 2
seed = 0

# %%
from pathlib import Path

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
import torch
from IPython.display import display

from vxlib import audio, display as vxdisplay
from vxlib.llmvox.chain import TargetVoiceStage
from vxlib.llmvox.sources import ScriptedSource
from vxlib.llmvox.stream import MultiQueueStreamer, StreamConfig, TTSStack, seam_snr_db
from vxlib.llvc.train import resolve_generator
from vxlib.run import NotebookRecord

torch.set_num_threads(threads)
run_dir = Path(run_dir)
out_dir = run_dir / "tts_demos"
record = NotebookRecord(run_dir, "05_interactive_tts_demos")
if codec == "world":
    found = sorted((run_dir / "llmvox").glob("world_codec_*")) if not codec_dir else [Path(codec_dir)]
    if not found:
        raise FileNotFoundError(f"no WorldCodec under {run_dir / 'llmvox'}: run notebook 04 first, set codec_dir, "
                                "or use codec wavtokenizer-random (random weights: noise, for timing only)")
    codec_spec = {"type": "world", "dir": str(found[0])}
elif codec == "wavtokenizer":
    codec_spec = {"type": "wavtokenizer", "config": wavtokenizer_config, "ckpt": wavtokenizer_ckpt}
else:
    codec_spec = {"type": codec}
stack = TTSStack.load(gpt_checkpoint, None if gpt_checkpoint else codec_spec, seed)
stream_config = StreamConfig(initial_dump_size_1=initial_dump_size_1, initial_dump_size_2=initial_dump_size_2,
                             max_pad_tokens=max_pad_tokens, gpt_precision=gpt_precision,
                             decoder_precision=decoder_precision)
streamer = MultiQueueStreamer(stack, stream_config)
voice = None
if llvc_checkpoint:
    llvc_checkpoint = resolve_generator(llvc_checkpoint)
    training_dir = llvc_checkpoint.parent.parent if llvc_checkpoint.parent.name == "checkpoints" else llvc_checkpoint.parent
    voice = TargetVoiceStage.from_files(llvc_checkpoint, llvc_config or training_dir / "config.json", stack.sample_rate)
source = ScriptedSource(words_per_s)
print(f"speech model: {stack.label}\ncodec: {type(stack.codec).__name__} ({stack.sample_rate} Hz)")
print(f"LLVC stage: {'on, ' + str(voice.sample_rate) + ' Hz' if voice else 'not loaded (llvc_checkpoint empty)'}")

# %% [markdown]
# ## A fixed prompt, streamed
# The scripted source writes the prompt word by word; the streamer speaks it. Each row of the table
# is one chunk: which sentence and replica made it, how many tokens, and when (ms after the first
# word arrived) its text had arrived, its tokens were generated, it was decoded and handed over.

# %%
def speak(text: str, with_voice: bool):
    """Stream ``text``; returns (audio, sample rate, stream record, chunks as delivered)."""
    with streamer.stream(source.pieces(text)) as stream:
        chunks = list(voice.convert(stream) if with_voice else stream)
    rate = voice.sample_rate if with_voice else stack.sample_rate
    return np.concatenate([c.audio for c in chunks]), rate, stream, chunks


tts_audio, tts_rate, tts_stream, _ = speak(prompt, with_voice=False)
timeline = pd.DataFrame(tts_stream.timeline())
display(timeline.round(1))
audio.save(out_dir / "prompt_tts.wav", tts_audio, tts_rate)
duration = tts_audio.size / tts_rate
finish_s = timeline["ready_ms"].iloc[-1] / 1e3
print(f"{len(tts_stream.sentences)} sentences, {len(timeline)} chunks, {duration:.2f} s of audio; "
      f"first audio {1e3 * tts_stream.time_to_first_audio:.0f} ms after the first word; "
      f"all audio ready after {finish_s:.2f} s")

# %% [markdown]
# ## How seamless is it?
# Each sentence's streamed audio against one decode of the same tokens (what a non-streaming
# system would output): the SNR over the sentence and at its worst chunk seam.

# %%
seams = []
for k in range(len(tts_stream.sentences)):
    mine = [c for c in tts_stream.chunks if c.sentence == k]
    codes = [x for c in mine for x in c.codes]
    with torch.inference_mode():
        whole = stack.codec.decode(torch.tensor(codes))[0].numpy()
    q = seam_snr_db(np.concatenate([c.audio for c in mine]), whole, list(np.cumsum([c.audio.size for c in mine])[:-1]))
    seams.append({"sentence": k, "chunks": len(mine), **q})
seams = pd.DataFrame(seams)
display(seams.round(1))

# %% [markdown]
# ## The timeline
# One row per chunk (top: first chunk). Grey triangle: the newest text piece the chunk read had
# arrived; blue: generating its tokens; orange: decoding; black dot: handed over (ready). On the right, the playback: each chunk plays when
# it is ready and the previous one has finished; red marks a wait (the listener hears a gap).

# %%
def plot_timeline(rows: pd.DataFrame, title: str = ""):
    fig, (ax, ax_play) = plt.subplots(1, 2, figsize=(13, 0.35 * len(rows) + 1.8), sharey=True)
    for i, r in rows.iterrows():
        y = -i
        ax.plot(r["text_arrival_ms"], y, "v", color="0.5")
        ax.barh(y, r["tokens_done_ms"] - r["generation_start_ms"], left=r["generation_start_ms"], color="tab:blue", height=0.6)
        ax.barh(y, r["decoded_ms"] - r["tokens_done_ms"], left=r["tokens_done_ms"], color="tab:orange", height=0.6)
        ax.plot(r["ready_ms"], y, "k.")
    ax.set_yticks(-rows.index, [f"s{r.sentence} r{r.replica} ({r.tokens} tok)" for r in rows.itertuples()])
    ax.set_xlabel("ms after the first text piece")
    ax.set_title(title or "text arrival → tokens → decoded → ready")
    play_end = rows["ready_ms"].iloc[0]
    for i, r in rows.iterrows():
        start = max(r["ready_ms"], play_end)
        if start > play_end + 1e-6 and i:
            ax_play.barh(-i, start - play_end, left=play_end, color="tab:red", height=0.6)
        ax_play.barh(-i, r["audio_ms"], left=start, color="tab:green", height=0.6)
        play_end = start + r["audio_ms"]
    ax_play.set_xlabel("playback (ms after the first text piece)")
    ax_play.set_title("playback: green plays, red waits")
    fig.tight_layout()
    return fig


fig = plot_timeline(timeline)
record.figure("timeline", fig)
plt.show()

# %% [markdown]
# ## The same answer in the LLVC target voice
# Every TTS chunk is resampled to 16 kHz in streaming form and converted by LLVC's streaming
# converter; the total length is exactly the resampled length (nothing dropped or padded).

# %%
metrics = {"time_to_first_audio_ms": 1e3 * tts_stream.time_to_first_audio, "audio_s": duration,
           "ready_over_audio": finish_s / duration, "chunks": len(timeline), "sentences": len(tts_stream.sentences),
           "worst_seam_snr_db": float(seams["worst_seam_snr_db"].min()), "model": stack.label}
if voice is not None:
    vc_audio, vc_rate, vc_stream, vc_chunks = speak(prompt, with_voice=True)
    audio.save(out_dir / "prompt_target_voice.wav", vc_audio, vc_rate)
    first_vc = next(c for c in vc_chunks if c.audio.size)
    metrics["target_voice_first_audio_ms"] = 1e3 * (first_vc.timing.ready - vc_stream.first_text_time)
    print(f"target voice: first audio {metrics['target_voice_first_audio_ms']:.0f} ms, {vc_audio.size / vc_rate:.2f} s")
    vxdisplay.audio_table({"prompt": {"TTS (24 kHz)": (tts_audio, tts_rate), "target voice (16 kHz)": (vc_audio, vc_rate)}})
else:
    print("LLVC stage skipped: set llvc_checkpoint and llvc_config (notebook 02's outputs)")
    display(vxdisplay.audio_player(tts_audio, tts_rate, "TTS"))
record.metrics(metrics)

# %% [markdown]
# ## Interactive demo
# Type a text and press *Speak*: the audio widget is refreshed with everything generated so far
# after each chunk (a browser audio element cannot append to a playing sound, so this shows the
# stream's progress; a gapless live player needs the WebSocket endpoint and a Web Audio client).
# With `ip` set, the request goes to that server's WebSocket instead of the in-process streamer.

# %%
import time

import ipywidgets as widgets

from vxlib.display import wav_bytes
from vxlib.serve.client import TTSClient

text_box = widgets.Textarea(value=prompt, layout=widgets.Layout(width="95%", height="70px"))
voice_toggle = widgets.ToggleButton(value=False, description="LLVC target voice", disabled=voice is None and not ip)
speak_button = widgets.Button(description="Speak", button_style="primary")
player = widgets.Audio(value=wav_bytes(np.zeros(240, np.float32), stack.sample_rate), autoplay=False)
status = widgets.Label()
plot_area = widgets.Output()


def run_in_process(text: str, with_voice: bool):
    with streamer.stream(source.pieces(text)) as stream:
        chunks = voice.convert(stream) if with_voice else stream
        rate = voice.sample_rate if with_voice else stack.sample_rate
        parts = []
        for c in chunks:
            parts.append(c.audio)
            player.value = wav_bytes(np.concatenate(parts), rate)
            status.value = f"chunk {c.index}: sentence {c.sentence}, {c.audio.size / rate * 1e3:.0f} ms of audio"
    return pd.DataFrame(stream.timeline())


def run_on_server(text: str, with_voice: bool):
    t0, parts, rows = time.perf_counter(), [], []
    for header, block in TTSClient(ip, port).ws_stream(text, target_voice=with_voice):
        if block is None:
            break
        parts.append(block)
        player.value = wav_bytes(np.concatenate(parts), header["sample_rate"])
        rows.append({"chunk": header["index"], "sentence": header["sentence"], "received_ms": 1e3 * (time.perf_counter() - t0),
                     "audio_ms": 1e3 * block.size / header["sample_rate"]})
    return pd.DataFrame(rows)


def on_speak(_):
    speak_button.disabled = True
    try:
        rows = (run_on_server if ip else run_in_process)(text_box.value, voice_toggle.value)
        with plot_area:
            plot_area.clear_output()
            if ip:  # the server's per-stage times stay on the server: show what the client saw
                display(rows.round(1))
            else:
                plt.show(plot_timeline(rows))
    except Exception as err:  # shown in the widget, not lost in the log
        status.value = f"error: {err}"
    finally:
        speak_button.disabled = False


speak_button.on_click(on_speak)
display(widgets.VBox([text_box, widgets.HBox([speak_button, voice_toggle, status]), player, plot_area]))
