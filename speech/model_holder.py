"""The process's speech model for one language: resolved at start-up, loaded lazily.

A :class:`SpeechModel` is what the IVR keeps from start-up: the language it serves and the
:class:`~speech.model_store.ModelInfo` of the model found for it (or None and why not). The
model itself is loaded on first use, once per process (the pid-keyed cache of
:mod:`speech.model_store`, so a forked worker loads its own), and shared by all threads; a
model that fails to load is disabled for good and the callers fall back to the keypad.
"""

from __future__ import annotations

import logging
import threading

from speech.errors import SpeechUnavailable
from speech.model_store import LoadedModel, ModelInfo, load_model

log = logging.getLogger(__name__)


class SpeechModel:
    """The process's speech model for the flows' language (see the module docstring).

    :meth:`get` returns None when there is no usable model.
    """

    def __init__(self, lang: str, info: ModelInfo | None, reason: str = "") -> None:
        self.lang = lang
        self.info = info
        self.reason = reason
        self._lock = threading.Lock()

    @property
    def available(self) -> bool:
        """True when a model is configured and has not failed to load."""
        return self.info is not None

    def disable(self, reason: str) -> None:
        """Stop using the model (e.g. it does not know the flows' language)."""
        with self._lock:
            self.info = None
            self.reason = reason

    def get(self) -> LoadedModel | None:
        """The loaded model (loading it now if needed), or None without a usable model."""
        with self._lock:
            info = self.info
        if info is None:
            return None
        try:
            return load_model(info)
        except SpeechUnavailable as exc:
            log.warning(
                "speech model %s failed to load: %s; voice input uses the keypad", info.path, exc
            )
            self.disable(str(exc))
            return None
