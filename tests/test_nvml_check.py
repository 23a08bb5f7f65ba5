"""Without the NVIDIA driver, genood turns off torch's NVML probe that Lightning turns on, so that an
optimizer step does not try to load NVML, and torch's answer to "is CUDA available" stays the same."""

import ctypes
import importlib
import os

import pytest
import torch

from genood import nvml_check


def _nvml_loads() -> bool:
    try:
        ctypes.CDLL(nvml_check.NVML_LIBRARY)
        return True
    except OSError:
        return False


def test_probe_is_turned_off_only_where_nvml_cannot_load(monkeypatch):
    monkeypatch.setenv(nvml_check.ENV, "1")
    changed = nvml_check.skip_nvml_check_without_driver()
    assert changed is not _nvml_loads()
    assert os.environ[nvml_check.ENV] == ("0" if changed else "1")
    monkeypatch.setenv(nvml_check.ENV, "0")
    assert nvml_check.skip_nvml_check_without_driver() is False  # only ever turns the probe off


def test_a_failing_load_turns_it_off_and_a_working_one_does_not(monkeypatch):
    def fail(name, *a, **k):
        raise OSError(f"{name}: cannot open shared object file")

    monkeypatch.setenv(nvml_check.ENV, "1")
    monkeypatch.setattr(nvml_check.ctypes, "CDLL", fail)
    assert nvml_check.skip_nvml_check_without_driver() is True
    monkeypatch.setenv(nvml_check.ENV, "1")
    monkeypatch.setattr(nvml_check.ctypes, "CDLL", lambda name, *a, **k: object())
    assert nvml_check.skip_nvml_check_without_driver() is False
    assert os.environ[nvml_check.ENV] == "1"


@pytest.mark.skipif(_nvml_loads(), reason="NVML loads here (NVIDIA driver present): the probe stays on")
def test_adam_steps_no_longer_try_to_load_nvml_and_cuda_availability_is_unchanged(monkeypatch):
    importlib.import_module("lightning")  # sets the probe on, as in every genood run
    monkeypatch.setenv(nvml_check.ENV, "1")
    with_probe = torch.cuda.is_available()
    loads = []
    real = ctypes.CDLL

    def counting(name, *a, **k):
        loads.append(name)
        return real(name, *a, **k)

    monkeypatch.setattr(ctypes, "CDLL", counting)
    p = torch.nn.Parameter(torch.ones(3))
    opt = torch.optim.Adam([p], lr=0.1)
    p.grad = torch.ones(3)
    opt.step()
    if not torch.cuda.is_initialized():  # the probe runs until CUDA is initialised
        assert nvml_check.NVML_LIBRARY in loads  # the cost being removed: one load attempt per step
    assert nvml_check.skip_nvml_check_without_driver() is True
    loads.clear()
    for _ in range(3):
        opt.step()
    assert loads == []
    assert torch.cuda.is_available() == with_probe
