"""gin files and `--gin.NAME=VALUE` bindings, T5X style, with errors that say what to change.

- Files are found as given, then in each gin search path: $T2T_GIN_PATH (colon-separated),
  ./gin_configs and the repository's gin_configs/, so `include 'models/t5_1_1/base.gin'` works.
- Without any `--gin_file`, bindings apply on top of the embedded default experiment.
- Strings may be quoted as in T5X (`--gin.MODEL_DIR="'runs/x'"`) or, where unambiguous, left bare
  (`--gin.MODEL_DIR=runs/x`).
- A binding of an unknown configurable or parameter, or of a macro (UPPER_CASE name) that no gin file
  defines, fails with the closest valid name, before anything is built or compiled.
"""

from __future__ import annotations

import difflib
import inspect
import logging
import os
import re
from pathlib import Path
from typing import Callable, Sequence, TypeVar

import gin

REPO_GIN_DIR = Path(__file__).resolve().parents[1] / "gin_configs"
DEFAULT_GIN_FILE = "experiments/t5_1_1_tiny_embedded.gin"
_MACRO = re.compile(r"^[A-Z][A-Z0-9_]*$")
T = TypeVar("T")


class ConfigError(ValueError):
    """A configuration mistake; the message says what to change."""


def _tolerate_namespace_packages_in_gin_includes() -> None:
    """gin also tries `include 'runs/pretrain.gin'` as a file of a Python package named `runs`. A
    ./runs folder (our default run directory) on sys.path, as under `python -m`, is a namespace
    package with no file of its own, and gin's lookup then crashes with a TypeError instead of
    moving on to the search paths. Treat that case as "no such resource"."""
    from gin import config as gin_config
    from gin import resource_reader

    def exists(path: str) -> bool:
        try:
            return resource_reader.system_path_file_exists(path)
        except TypeError:
            return False

    gin_config._FILE_READERS[:] = [  # gin has no public way to replace a registered reader
        (reader, exists if check is resource_reader.system_path_file_exists else check)
        for reader, check in gin_config._FILE_READERS]


_tolerate_namespace_packages_in_gin_includes()


def register_configurables() -> None:
    """Import every module that defines gin configurables, so bindings can name them."""
    import t2t.data.objectives  # noqa: F401
    import t2t.models.config  # noqa: F401
    import t2t.training.optimizers  # noqa: F401
    import t2t.training.partitioning  # noqa: F401
    import t2t.training.trainer  # noqa: F401


def gin_search_paths() -> list[Path]:
    env = [Path(p) for p in os.environ.get("T2T_GIN_PATH", "").split(os.pathsep) if p]
    return env + [Path.cwd() / "gin_configs", REPO_GIN_DIR]


def resolve_gin_file(name: str) -> Path:
    """The gin file `name`, as a path or relative to a search path; a clear error if missing."""
    candidates = [Path(name)] + [base / name for base in gin_search_paths()]
    # T5X-style paths that start with the gin_configs folder name resolve from the repo too.
    if Path(name).parts[:1] == ("gin_configs",):
        candidates.append(REPO_GIN_DIR.parent / name)
    for path in candidates:
        if path.is_file():
            return path
    raise ConfigError(
        f"gin file {name!r} not found (looked in: {', '.join(str(c) for c in candidates)}). "
        f"Pass a path, or a name relative to gin_configs/, e.g. '{DEFAULT_GIN_FILE}'.")


def _known_configurables() -> dict[str, object]:
    return {c.name: c for _, c in gin.config._REGISTRY.items()}


def _suggest(word: str, options: Sequence[str]) -> str:
    close = difflib.get_close_matches(word, list(options), n=1)
    return f" Did you mean {close[0]!r}?" if close else ""


def _explain(binding: str, error: Exception) -> ConfigError:
    """Turn gin's error for `binding` into one that names the mistake and the closest valid name."""
    message = str(error).splitlines()[0]
    configurables = _known_configurables()
    if m := re.search(r"No configurable matching '([^']+)'", message):
        hint = _suggest(m.group(1), configurables)
        return ConfigError(f"Unknown gin configurable {m.group(1)!r} in binding {binding!r}.{hint}")
    if m := re.search(r"Configurable '([^']+)' doesn't have a parameter named '([^']+)'", message):
        name, param = m.groups()
        configurable = configurables.get(name.split(".")[-1])
        params = (list(inspect.signature(configurable.wrapped).parameters)
                  if configurable is not None else [])
        hint = _suggest(param, params)
        return ConfigError(f"{name!r} has no parameter {param!r} (binding {binding!r}).{hint} "
                           f"Its parameters: {', '.join(params)}.")
    return ConfigError(f"Cannot apply gin binding {binding!r}: {message}")


def _defined_macros() -> list[str]:
    """Macros (`NAME = value` lines) of the files parsed so far."""
    return sorted(scope for scope, selector in gin.config._CONFIG if selector == "gin.macro")


def _needs_quotes(value: str) -> bool:
    """A bare word that gin cannot parse, like runs/t5 or adafactor, is meant as a string."""
    return not value[:1] in "'\"@%[{(-" and not re.fullmatch(r"[-+0-9.eE]+|True|False|None", value)


def _apply_binding(binding: str) -> None:
    name, sep, value = binding.partition("=")
    name, value = name.strip(), value.strip()
    if not sep or not name:
        raise ConfigError(f"Malformed binding {binding!r}; expected NAME=VALUE, e.g. "
                          f"--gin.TRAIN_STEPS=200.")
    defined = _defined_macros()
    if _MACRO.match(name) and name not in defined:
        raise ConfigError(
            f"Unknown macro {name!r}: no gin file in this configuration defines it, so setting it "
            f"would have no effect.{_suggest(name, defined)} Defined macros: {', '.join(defined)}.")
    try:
        gin.parse_config(f"{name} = {value}")
    except SyntaxError:
        if not _needs_quotes(value):
            raise ConfigError(f"Cannot parse the value of binding {binding!r}.") from None
        gin.parse_config(f"{name} = {value!r}")
    except ValueError as error:
        raise _explain(binding, error) from None


def _hide_search_misses(record: logging.LogRecord) -> bool:
    return not record.getMessage().startswith("Path not found")


def split_gin_flags(argv: Sequence[str]) -> tuple[list[str], list[str], list[str]]:
    """(gin files, gin bindings, other args) from T5X-style flags:
    ``--gin_file=FILE`` (or ``--gin_file FILE``) and ``--gin.NAME=VALUE``, as every gin entry point
    (t2t train, distill, rlhf, ...) takes them."""
    files, bindings, rest = [], [], []
    args = list(argv)
    while args:
        arg = args.pop(0)
        if arg.startswith("--gin_file="):
            files.append(arg.split("=", 1)[1])
        elif arg == "--gin_file" and args:
            files.append(args.pop(0))
        elif arg.startswith("--gin."):
            bindings.append(arg[len("--gin."):])
        else:
            rest.append(arg)
    return files, bindings, rest


def parse_gin(gin_files: Sequence[str], bindings: Sequence[str], finalize: bool = True) -> None:
    """Clear gin, then apply `gin_files` (or the default experiment) and `bindings` in order."""
    register_configurables()
    gin.clear_config()
    for path in gin_search_paths():
        if path.is_dir() and str(path) not in gin.config._LOCATION_PREFIXES:
            gin.add_config_file_search_path(str(path))
    # gin tries each search path for an include and logs every miss as an error; only the final
    # "not found" matters, and gin raises that itself.
    root = logging.getLogger()
    root.addFilter(_hide_search_misses)
    try:
        for name in gin_files or [DEFAULT_GIN_FILE]:
            try:
                gin.parse_config_file(str(resolve_gin_file(name)))
            except (ValueError, OSError) as error:
                raise ConfigError(f"In gin file {name!r}: {str(error).splitlines()[0]}") from None
    finally:
        root.removeFilter(_hide_search_misses)
    for binding in bindings:
        _apply_binding(binding)
    if finalize:
        try:
            gin.finalize()
        except ValueError as error:  # e.g. a %gin.REQUIRED macro left unset
            message = str(error).splitlines()[0]
            if m := re.match(r"(\w+)/macro\.value set to `%gin.REQUIRED`", message):
                message = (f"macro {m.group(1)} is required but no gin file or binding sets it. "
                           f"Set it, e.g. --gin.{m.group(1)}=...")
            raise ConfigError(f"Incomplete configuration: {message}") from None


def call_configured(fn: Callable[..., T], *args, **kwargs) -> T:
    """`fn(*args, **kwargs)` for a gin-configurable `fn`, where a ValueError raised while gin
    builds `fn`'s arguments from the bindings, before `fn`'s own code runs (an unknown model
    size in `@model_config()`, a bad optimizer setting), is a `ConfigError`: the bindings are at
    fault. A ValueError from `fn`'s own code is left as it is."""
    body = inspect.unwrap(fn).__code__
    try:
        return fn(*args, **kwargs)
    except ValueError as error:
        traceback, frames = error.__traceback__, set()
        while traceback is not None:
            frames.add(traceback.tb_frame.f_code)
            traceback = traceback.tb_next
        if isinstance(error, ConfigError) or body in frames:
            raise
        raise ConfigError(str(error)) from error
