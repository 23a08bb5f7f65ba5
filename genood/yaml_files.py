"""Reading genood's own YAML files (benchmark, paper and sweep files) with one-line errors that name the file."""

from __future__ import annotations

from pathlib import Path
from typing import Collection, Optional

import yaml


def read_yaml_mapping(path: str | Path, error: type[Exception], kind: str, shape: str,
                      allowed: Optional[Collection[str]] = None, hint: str = "") -> dict:
    """The top-level mapping of the YAML file ``path``.

    A missing or unreadable file, invalid YAML, a top level that is not a mapping, or (with ``allowed``) a key
    outside ``allowed`` raises ``error`` with one line naming the file: ``kind`` names the file ("benchmark
    file"), ``shape`` says what its top level must be ("a mapping with 'seeds' and 'entries'") and ``hint`` is
    appended to the missing-file message. An empty file is an empty mapping.
    """
    path = Path(path)
    if not path.is_file():
        raise error(f"{kind} {str(path)!r} does not exist{hint}")
    try:
        raw = yaml.safe_load(path.read_text())
    except OSError as e:
        raise error(f"cannot read {kind} {path}: {e.strerror or e}") from None
    except yaml.YAMLError as e:
        raise error(f"{path}: not valid YAML: {' '.join(str(e).split())}") from None
    raw = {} if raw is None else raw
    if not isinstance(raw, dict):
        raise error(f"{path}: a {kind} is {shape}")
    unknown = set(raw) - set(allowed) if allowed is not None else set()
    if unknown:
        raise error(f"{path}: unknown key(s) {sorted(unknown)}; valid: {sorted(allowed)}")
    return raw
