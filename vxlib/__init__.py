"""vxlib: reproducible research collection for two streaming speech systems, LLVC and LLMVoX.

Nothing heavy is imported here: ``import vxlib`` must stay cheap so that CLIs start fast and
notebooks can import submodules selectively (``from vxlib import audio``).
"""

__version__ = "0.1.0"

__all__ = ["__version__"]
