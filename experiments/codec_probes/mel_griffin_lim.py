"""Probe (not a vxlib codec): 80 log-mel k-means (4096 codes) + Griffin-Lim resynthesis, 75 tokens/s at 24 kHz.

Measures the Whisper tiny.en WER / DNSMOS of decode(encode(x)) on held-out sentences with the same
scorer as ``python -m vxlib.bench codec`` (docs/codec.md, "A log-mel codebook with Griffin-Lim").

    python experiments/codec_probes/mel_griffin_lim.py CORPUS_DIR SENTENCES.txt [N_MELS SMOOTH SYN_HOP]

CORPUS_DIR holds one file per sentence (sorted names pair with lines); fit on the first 300,
scored on the next 30.
"""
import sys, time, numpy as np, torch, torchaudio, librosa
torch.set_num_threads(1)
from pathlib import Path
from vxlib import audio
from vxlib.codec.world_codec import kmeans, corpus_files
from vxlib.bench.codec import evaluate_resynthesis
SR, HOP, NFFT, NMELS = 24000, 320, 1280, int(sys.argv[3]) if len(sys.argv) > 3 else 80
SMOOTH = int(sys.argv[4]) if len(sys.argv) > 4 else 1
SYN_HOP = int(sys.argv[5]) if len(sys.argv) > 5 else 80
files = corpus_files(Path(sys.argv[1])); texts = [s.strip() for s in open(sys.argv[2]) if s.strip()]
melfb = librosa.filters.mel(sr=SR, n_fft=NFFT, n_mels=NMELS, fmin=0, fmax=SR/2).astype(np.float32)  # (M, F)
win = np.hanning(NFFT + 1)[:-1].astype(np.float32)
def logmel(x):
    S = np.abs(librosa.stft(x, n_fft=NFFT, hop_length=HOP, window=win, center=True))  # (F, T)
    return np.log(np.maximum(melfb @ S, 1e-5)).T  # (T, M)
t0 = time.time()
train = [audio.load(f, sr=SR)[0] for f in files[:300]]
X = np.concatenate([logmel(x) for x in train])
print("frames", X.shape, time.time() - t0, flush=True)
C = kmeans(X, 4096, 25, 20000, 0)
print("fit", time.time() - t0, flush=True)
Ct = torch.from_numpy(C)
inv = np.linalg.pinv(melfb)
gl = torchaudio.transforms.GriffinLim(n_fft=NFFT, hop_length=SYN_HOP, win_length=NFFT, power=1.0, n_iter=32, momentum=0.99)
def render(x):
    M = logmel(x)
    codes = torch.cdist(torch.from_numpy(M), Ct).argmin(1)
    D = C[codes.numpy()]
    if SMOOTH > 1:
        k = np.ones(SMOOTH) / SMOOTH
        D = np.stack([np.convolve(np.pad(D[:, j], SMOOTH // 2, mode="edge"), k, mode="valid") for j in range(D.shape[1])], 1)
    # interpolate to the synthesis hop
    T = D.shape[0]; r = HOP // SYN_HOP
    t_src = np.arange(T); t_dst = np.arange(T * r) / r
    Di = np.stack([np.interp(t_dst, t_src, D[:, j]) for j in range(D.shape[1])], 1)
    S = np.maximum(inv @ np.exp(Di).T, 0).astype(np.float32)  # (F, T*r)
    torch.manual_seed(0)
    y = gl(torch.from_numpy(S)).numpy()
    y = y[: len(x)]
    return y / max(1e-6, np.abs(y).max()) * 0.9 * np.abs(x).max()
test = [audio.load(f, sr=SR)[0] for f in files[300:330]]
t1 = time.time()
r = evaluate_resynthesis(render, test, texts[300:330], SR, [str(f) for f in files[300:330]])
print(f"mels {NMELS} smooth {SMOOTH} synhop {SYN_HOP}: WER {100*r['wer']:.1f}% P808 {r['dnsmos_p808']:.2f} OVRL {r['dnsmos_ovrl']:.2f} ({time.time()-t1:.0f}s)", flush=True)
