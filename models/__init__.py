"""Bundled networks (YAML), chip presets, weights, teacher ANNs and conversion.

`resolve_net("vgg11")`, `resolve_net("vgg11.yaml")` and `resolve_net("path/to/net.yaml")`
all work: an existing path wins, otherwise a bundled name is looked up here.
"""
from __future__ import annotations

from pathlib import Path

MODELS_DIR = Path(__file__).resolve().parent


def bundled_nets() -> list[str]:
    return sorted(p.stem for p in MODELS_DIR.glob("*.yaml"))


def resolve_net(spec: str | Path) -> Path:
    """Path of a network YAML given a bundled name or a path."""
    path = Path(spec)
    name = path.name[:-5] if path.name.endswith(".yaml") else path.name
    bundled = MODELS_DIR / f"{name}.yaml"
    try:
        if path.is_file():
            return path
        if path.parent == Path(".") and bundled.is_file():
            return bundled
    except (OSError, ValueError):       # a name too long for the file system, a NUL byte: not a file
        pass
    shown = spec if str(spec).isprintable() else repr(str(spec))     # a name with a newline stays on one line
    raise FileNotFoundError(f"--net {shown}: no such file, and not a bundled net; expected a YAML path "
                            f"or one of: {', '.join(bundled_nets())}")
