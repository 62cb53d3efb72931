"""Offline evaluation of converted / synthesised speech (quality, speaker, intelligibility, latency).

Submodules, one metric family each (heavy models load on first use and are cached per process):
``speaker`` (Resemblyzer), ``mos`` (DNSMOS, WVMOS), ``text`` (normalisation, WER/CER),
``spectral`` (mel-cepstral distortion), ``f0`` (pitch agreement), ``streaming`` (timing figures);
``metrics`` runs them over folders and builds the paper-style table; ``python -m vxlib.eval`` is
its CLI. See docs/evaluation.md.
"""

from vxlib.eval.metrics import (DEFAULT_METRICS, METRICS, SystemResult, evaluate_system, find_audio,
                                markdown_table, results_table, utterance_key)
from vxlib.eval.streaming import StreamingFigures, streaming_figures

__all__ = ["METRICS", "DEFAULT_METRICS", "SystemResult", "evaluate_system", "find_audio", "utterance_key",
           "results_table", "markdown_table", "StreamingFigures", "streaming_figures"]
