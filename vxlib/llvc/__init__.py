"""LLVC (Koe.ai, 2023): low-latency streaming voice conversion.

- :class:`Net` - the generator, official state-dict layout (``model.py``);
- :func:`load_model`, :func:`convert` - official checkpoints in, offline conversion (``inference.py``);
- :class:`StreamingConverter` - exact or reference-faithful streaming (``streaming.py``);
- CLIs: ``python -m vxlib.llvc.infer`` (files), ``python -m vxlib.llvc.live`` (microphone).
"""

from vxlib.llvc.inference import (CheckpointMismatchError, build_model, check_state_dict, convert, load_config,
                                  load_model, save_checkpoint)
from vxlib.llvc.model import Net
from vxlib.llvc.streaming import StreamingConverter

__all__ = ["Net", "load_model", "load_config", "build_model", "check_state_dict", "save_checkpoint", "convert",
           "CheckpointMismatchError", "StreamingConverter"]
