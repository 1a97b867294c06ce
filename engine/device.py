"""Choosing the device a run trains on."""

from __future__ import annotations

import torch

from engine.errors import ConfigError


def available_devices() -> list[str]:
    """Devices this machine offers, best first; ``cpu`` is always last."""
    found = [f"cuda:{i}" for i in range(torch.cuda.device_count())]
    if getattr(torch.backends, "mps", None) and torch.backends.mps.is_available():
        found.append("mps")
    return found + ["cpu"]


def resolve_device(name: str = "auto") -> torch.device:
    """``auto`` picks CUDA, then Apple MPS, then the CPU; an explicit one must exist."""
    name = (name or "auto").strip().lower()
    if name == "auto":
        return torch.device(available_devices()[0])
    if name.startswith("cuda"):
        index = _cuda_index(name)
        if not torch.cuda.is_available():
            raise ConfigError(
                f"device {name!r} was asked for, but this machine has no CUDA GPU "
                "that torch can use. Use --device auto or cpu."
            )
        if index >= torch.cuda.device_count():
            raise ConfigError(
                f"device {name!r} does not exist; this machine has "
                f"{torch.cuda.device_count()} CUDA device(s)."
            )
        return torch.device("cuda", index)
    if name == "mps":
        if "mps" not in available_devices():
            raise ConfigError(
                "device 'mps' was asked for, but Apple MPS is not available."
            )
        return torch.device("mps")
    if name == "cpu":
        return torch.device("cpu")
    raise ConfigError(f"unknown device {name!r}; use auto, cpu, cuda, cuda:N or mps.")


def _cuda_index(name: str) -> int:
    """The N of ``cuda`` or ``cuda:N``; anything else after ``cuda`` is an error."""
    if name == "cuda":
        return 0
    prefix, _, index = name.partition(":")
    if prefix != "cuda" or not index.isdigit():
        raise ConfigError(
            f"unknown device {name!r}: a CUDA device is written cuda or cuda:N, N a "
            "GPU number from 0. Use --device auto, cpu, cuda, cuda:N or mps."
        )
    return int(index)
