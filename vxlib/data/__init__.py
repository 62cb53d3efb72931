"""Data: sources (LibriSpeech reader, local multi-speaker corpus), teachers (RVC, WORLD) and the
paired-dataset writer that LLVC trains on."""
