"""Teachers convert a source utterance into the target voice, time-aligned with the input.

- :class:`vxlib.data.teachers.base.Teacher` — the interface;
- ``rvc`` — the official RVC v1/v2 synthesizers (paper's teacher; needs the user's checkpoints);
- ``world`` — an embedded deterministic DSP teacher (WORLD vocoder), no download.
"""
