"""jsonargparse's parse errors (a usage block, then a nested "Does not validate against any of the Union
subtypes" report) rewritten as one line that names the file, the class or the key, and what exists.

:func:`one_line` is pure string work; :class:`genood.cli.GenoodCLI` gives it the genood classes found by
importing every model family and datamodule, and the config folder.
"""

from __future__ import annotations

import difflib
import re
from pathlib import Path
from typing import Optional, Sequence

_KINDS = {"model": "model", "data": "datamodule"}
# import failures of a class_path (as opposed to a bad argument of a class that imported fine)
_IMPORT_FAILURE = re.compile(r"has no attribute|No module named|does not correspond to a subclass|"
                             r"is not a subclass|not a valid class|Unable to import|must be a class")


def _shown(path) -> str:
    """``path`` relative to the working directory when it lies under it (links not followed)."""
    try:
        return str(Path(path).absolute().relative_to(Path.cwd().absolute()))
    except ValueError:
        return str(path)


def _closest(given: str, known: Sequence[str], key=lambda s: s) -> Optional[str]:
    """The entry of ``known`` whose ``key`` is closest to ``key(given)``, if close enough to be a typo."""
    by_key = {key(k).lower(): k for k in known}
    close = difflib.get_close_matches(key(given).lower(), list(by_key), n=1, cutoff=0.8)
    return by_key[close[0]] if close else None


def missing_config(path: str, config_root: Optional[Path]) -> str:
    """A ``--config`` file that does not exist: the families with configs, and the closest config file."""
    text = f"config file {_shown(path)} does not exist"
    if config_root is None or not config_root.is_dir():
        return text
    root = _shown(config_root)
    configs = sorted(_shown(p) for p in config_root.rglob("*.yaml"))
    close = _closest(_shown(path), configs, key=lambda s: s.removeprefix(root + "/"))
    families = sorted(p.name for p in config_root.iterdir() if p.is_dir() and any(p.glob("*.yaml")))
    return (text + (f" (did you mean {close}?)" if close else "") + f"; config families: "
            + ", ".join(families) + f" ({root}/<family>/*.yaml; {root}/default.yaml is the default experiment)")


def _errors_block(lines: list[str]) -> list[str]:
    """The first alternative's error text of a "Does not validate against any of the Union subtypes" block
    (the ``- ...`` item and its indented continuation), NoneType alternatives dropped."""
    items: list[list[str]] = []
    in_errors = False
    for line in lines:
        stripped = line.strip()
        if stripped == "Errors:":
            in_errors = True
            continue
        if not in_errors:
            continue
        if stripped.startswith(("Given value type:", "Given value:")):
            break
        if stripped.startswith("- "):
            items.append([stripped[2:]])
        elif items:
            items[-1].append(stripped)
    items = [i for i in items if not re.fullmatch(r"Expected a <class 'NoneType'>", i[0])]
    return items[0] if items else []


def _given_value(lines: list[str]) -> Optional[str]:
    for line in lines:
        if line.strip().startswith("Given value:"):
            return line.split(":", 1)[1].strip()
    return None


def one_line(message: str, classes: dict[str, Sequence[str]], config_root: Optional[Path] = None) -> str:
    """One line for jsonargparse's error ``message``. ``classes``: ``{"model": [...], "data": [...]}``, the
    genood classes a ``class_path`` may name (``"broken"``: modules that failed to import, named too)."""
    m = re.search(r"File does not exist: '([^']+)'", message)
    if m:
        return missing_config(m.group(1), config_root)
    lines = message.splitlines()
    head = re.match(r'Parser key "([^"]+)":\s*(.*)', lines[0]) if lines else None
    if head is None:
        text = " ".join(message.split())
        if text.startswith("unrecognized arguments"):
            text += " (--help lists the options)"
        return text
    key, rest = head.group(1), head.group(2)
    error = _errors_block(lines[1:])
    if not error:
        return f"{key}: " + " ".join(" ".join([rest, *lines[1:]]).split())
    problem = re.match(r"Problem with given class_path '([^']+)':", error[0])
    if key in _KINDS:
        kind, known = _KINDS[key], list(classes.get(key, []))
        if problem is not None:
            class_path, reason = problem.group(1), " ".join(error[1:])
        else:
            found = re.search(r"Import path (\S+)", error[0])
            class_path, reason = (found.group(1) if found else "?"), " ".join(error)
        if problem is None or _IMPORT_FAILURE.search(reason):
            broken = list(classes.get("broken", []))
            close = _closest(class_path, known, key=lambda s: s.rsplit(".", 1)[-1])
            return (f"{key}.class_path {class_path!r} is not a genood {kind}"
                    + (f" (did you mean {close}?)" if close else "")
                    + f": {reason}; genood {kind}s: " + ", ".join(known)
                    + ("; could not import: " + "; ".join(broken) if broken else ""))
        option = re.search(r"Option '([^']+)' is not accepted", reason)
        if option:
            return (f"{key}.init_args.{option.group(1)} is not an argument of {class_path} "
                    f"(--{key}.help {class_path} lists its arguments)")
        sub = re.match(r'Parser key "([^"]+)":\s*(.*)', reason)
        if sub:
            return f"{key}.init_args.{sub.group(1)} ({class_path}): {sub.group(2)}"
        return f"{key} ({class_path}): {reason}"
    expected = [e for e in error if e]
    given = _given_value(lines)
    return f"{key}: " + " ".join(expected) + (f" (given: {given})" if given is not None else "")
