"""RVC (Retrieval-based Voice Conversion) teacher: official v1/v2 synthesizers, with and without f0.

- :mod:`.models` — the synthesizer (``Synthesizer``, ``SynthesizerConfig``), official key names;
- :mod:`.checkpoint` — ``load_rvc(path)`` for official inference ``.pth`` files, strict key check;
- :mod:`.pipeline` — ``RVCPipeline``, the index-free file conversion (reference stages);
- :mod:`.teacher` — ``RVCTeacher``, the :class:`~vxlib.data.teachers.base.Teacher` for datasets.
"""

from .checkpoint import CheckpointError, RVCModel, load_rvc
from .models import Synthesizer, SynthesizerConfig
from .pipeline import ContentEncoder, Padding, RVCPipeline
from .teacher import RVCTeacher

__all__ = ["CheckpointError", "RVCModel", "load_rvc", "Synthesizer", "SynthesizerConfig", "ContentEncoder",
           "Padding", "RVCPipeline", "RVCTeacher"]
