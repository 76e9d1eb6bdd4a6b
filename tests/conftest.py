"""Shared fixtures: tiny random-weight models of the real classes, built in code (no downloads)."""

from __future__ import annotations

import os
import warnings

import pytest
import torch

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_VERBOSITY", "error")
warnings.filterwarnings("ignore", category=FutureWarning)
torch.set_num_threads(min(2, torch.get_num_threads()))


@pytest.fixture(scope="session")
def tiny_manifest():
    from avcli.models.presets import get_preset

    return get_preset("tiny")


@pytest.fixture(scope="session")
def tiny_model(tiny_manifest):
    from avcli.models.joint import JointModel

    torch.manual_seed(0)
    return JointModel(tiny_manifest).eval()


@pytest.fixture(scope="session")
def tiny_bundle(tiny_model, tmp_path_factory):
    from avcli.models.bundle import save_bundle

    return save_bundle(tiny_model, tmp_path_factory.mktemp("bundles") / "tiny")


@pytest.fixture(autouse=True)
def _isolated_cache(tmp_path, monkeypatch):
    monkeypatch.setenv("AVGEN_CACHE", str(tmp_path / "cache"))


def run_cli(monkeypatch, capsys, *args):
    """The console entry point in-process (`avgen ARGS`): exit code, stdout and stderr exactly as a user sees them
    (errors mapped to one line and an exit code by avcli.cli.main.run)."""
    import sys

    from avcli.cli.main import run

    monkeypatch.setattr(sys, "argv", ["avgen", *map(str, args)])
    try:
        run()
        code = 0
    except SystemExit as exc:
        code = exc.code
    cap = capsys.readouterr()
    return code, cap.out, cap.err
