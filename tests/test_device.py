"""One rule for devices and precision: bf16 only where the GPU has it natively, fp16 (with a grad
scaler) on other GPUs, float32 on the CPU. Every branch is forced here on a CPU-only machine."""
from __future__ import annotations

import pytest
import torch

import dsnet.device as device_rule
from dsnet.device import amp_dtype, pick_device, precision_name


def fake_gpu(monkeypatch, native: bool, emulated: bool = True):
    def is_bf16_supported(including_emulation: bool = True):
        return native or (including_emulation and emulated)

    monkeypatch.setattr(torch.cuda, "is_bf16_supported", is_bf16_supported)


def test_cpu_trains_in_float32():
    assert amp_dtype(torch.device("cpu")) is None
    assert precision_name(amp_dtype(torch.device("cpu"))) == "float32"


def test_a_gpu_with_native_bf16_uses_bf16(monkeypatch):
    fake_gpu(monkeypatch, native=True)
    assert amp_dtype(torch.device("cuda")) == torch.bfloat16


def test_a_t4_which_only_emulates_bf16_uses_fp16(monkeypatch):
    fake_gpu(monkeypatch, native=False, emulated=True)   # what a T4 answers (pytorch#148322)
    assert torch.cuda.is_bf16_supported() is True         # the question the old rule asked
    assert amp_dtype(torch.device("cuda")) == torch.float16
    assert precision_name(torch.float16) == "float16"


def test_amp_off_is_float32_everywhere(monkeypatch):
    fake_gpu(monkeypatch, native=True)
    assert amp_dtype(torch.device("cuda"), enabled=False) is None


def test_the_trainer_scales_gradients_exactly_when_it_runs_in_fp16(monkeypatch):
    import dsnet.train as training

    fake_gpu(monkeypatch, native=False)
    # the run is built on the CPU, but its precision comes from the rule as if the device were a T4
    monkeypatch.setattr(training, "amp_dtype", lambda device, enabled=True: device_rule.amp_dtype(
        torch.device("cuda"), enabled))
    run = training.build_run(training.make_config("quick", device="cpu"))
    assert run.dtype == torch.float16 and run.scaler.is_enabled()


@pytest.mark.parametrize("name, message", [
    ("gpu9", "device 'gpu9' is not available: torch knows no device of that name; use auto, cpu, cuda or cuda:N"),
    ("tpu", "not available"),
])
def test_unknown_devices_are_one_sentence(name, message):
    with pytest.raises(ValueError, match=message):
        pick_device(name)


@pytest.mark.skipif(torch.cuda.is_available(), reason="needs a machine without CUDA")
def test_cuda_without_a_gpu_names_the_fix():
    with pytest.raises(ValueError, match="device 'cuda' is not available: this torch .*; use cpu or auto"):
        pick_device("cuda")


def test_auto_and_cpu():
    assert pick_device("auto").type == ("cuda" if torch.cuda.is_available() else "cpu")
    assert pick_device("cpu") == torch.device("cpu")
