"""genood's own YAML files (benchmark, paper, sweep): each way a file can be wrong is one error naming the file."""

import pytest

from genood.benchmark.spec import BenchmarkSpecError, load_benchmark
from genood.sweep.spec import SweepSpecError, load_sweep


@pytest.mark.parametrize("text, message", [
    (None, "does not exist"),
    ("entries: [unclosed", "not valid YAML"),
    ("- a\n- b\n", "is a mapping with"),
    ("seeds: [0]\nentries: []\nseedz: 1\n", r"unknown key\(s\) \[.*'seedz'"),
])
@pytest.mark.parametrize("loader, error", [(load_benchmark, BenchmarkSpecError), (load_sweep, SweepSpecError)])
def test_a_wrong_file_is_one_error_naming_it(tmp_path, loader, error, text, message):
    path = tmp_path / "file.yaml"
    if text is not None:
        path.write_text(text)
    with pytest.raises(error, match=message) as e:
        loader(path)
    assert str(path) in str(e.value) and "\n" not in str(e.value)
