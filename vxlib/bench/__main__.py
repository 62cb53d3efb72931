"""``python -m vxlib.bench NAME [args]``: import ``vxlib.bench.NAME`` and call its ``main(argv)``."""

from __future__ import annotations

import importlib
import pkgutil
import sys

import vxlib.bench


def available() -> list[str]:
    return sorted(m.name for m in pkgutil.iter_modules(vxlib.bench.__path__) if not m.name.startswith("_"))


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    if not argv or argv[0] in ("-h", "--help"):
        print(f"usage: python -m vxlib.bench NAME [args]   (NAME: {', '.join(available())})")
        return 0 if argv else 2
    name, rest = argv[0], argv[1:]
    if name not in available():
        print(f"error: unknown benchmark {name!r} (available: {', '.join(available())})", file=sys.stderr)
        return 2
    return int(importlib.import_module(f"vxlib.bench.{name}").main(rest) or 0)


if __name__ == "__main__":
    sys.exit(main())
