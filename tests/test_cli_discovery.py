"""The CLI's hint of valid class paths finds every model family by itself and names a broken one."""

from __future__ import annotations

import sys

from conftest import REPO


def test_every_model_family_folder_is_listed():
    from genood.cli import known_classes_hint

    hint = known_classes_hint()
    families = sorted(p.parent.name for p in (REPO / "genood/models").glob("*/lightning_model.py"))
    assert families, "no model family found"
    models_line = next(line for line in hint.splitlines() if line.startswith("genood models"))
    for family in families:
        assert f"genood.models.{family}." in models_line, family
    assert "could not import" not in hint


def test_a_family_that_fails_to_import_is_named_with_its_error(tmp_path, monkeypatch):
    from genood.cli import _discover

    pkg = tmp_path / "fakefamilies"
    (pkg / "good").mkdir(parents=True)
    (pkg / "broken").mkdir()
    (pkg / "__init__.py").write_text("")
    (pkg / "good" / "__init__.py").write_text("X = 1\n")
    (pkg / "broken" / "__init__.py").write_text("import not_a_real_dependency_xyz\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    failures = _discover("fakefamilies")
    assert len(failures) == 1
    assert failures[0].startswith("fakefamilies.broken: ModuleNotFoundError") and "not_a_real_dependency_xyz" in failures[0]
    assert "fakefamilies.good" in sys.modules
