"""The kit's trained artefacts in the Hugging Face hub layout: save a model to a folder, load it from a folder or a
hub id.

A saved folder holds ``model.safetensors`` (every tensor of the model's state dict: pruning masks, kept exactly,
and buffers included), ``config.json`` (the format and kit version, how to rebuild the model, the method, its
parameters and metrics) and ``README.md`` (a model card). The model is rebuilt from a recipe of kit callables,
``{"build": "kit.models:MLP", "kwargs": {...}}``, whose arguments may themselves be such recipes (an NPR operator
takes a problem: ``{"build": "kit.operators:NPR", "kwargs": {"problem": {"build": "kit.operators:Heat", "kwargs":
{"alpha": 0.02}}}}``); only callables inside ``kit`` are built, so loading runs no foreign code.

``load`` checks everything before it returns: the files, the format and the kit version, that every mask matches
its weight and holds only 0 and 1, that the weights fit the rebuilt model; a failure raises and hands back nothing
half-loaded.
"""

from __future__ import annotations

import importlib
import inspect
import json
import os
import shutil
import tempfile
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from torch import nn
from torch.nn.utils import prune

FORMAT = "kit.hub/1"
WEIGHTS, CONFIG, CARD = "model.safetensors", "config.json", "README.md"
MASK = "_mask"


@dataclass
class Loaded:
    """A loaded artefact: the rebuilt model with its weights and masks, its config and its model card."""

    model: nn.Module
    config: dict[str, Any]
    card: str = ""
    folder: Path = field(default_factory=Path)


def recipe(build: str, **kwargs: Any) -> dict[str, Any]:
    """A rebuild recipe: the kit callable ``"module:name"`` and its keyword arguments (JSON values or recipes)."""
    _callable(build)
    return {"build": build, "kwargs": kwargs}


def recipe_of(obj: Any) -> dict[str, Any]:
    """The recipe that rebuilds ``obj`` from the constructor call it remembers (kit models, problems, ...): its
    arguments as JSON values or, for kit objects among them, nested recipes."""
    from .models import Rebuildable

    if not isinstance(obj, Rebuildable) or obj.rebuild_args() is None:
        raise TypeError(f"{type(obj).__name__} does not remember how it was built (only kit models and problems do); "
                        "pass build=kit.hub.recipe('kit.module:name', **kwargs)")
    cls, args, kwargs = obj.rebuild_args()
    bound = inspect.signature(cls).bind(*args, **kwargs)
    values: dict[str, Any] = {}
    for name, value in bound.arguments.items():
        kind = inspect.signature(cls).parameters[name].kind
        if kind is inspect.Parameter.VAR_KEYWORD:
            values.update({k: _as_json(v, f"{cls.__name__}({k}=...)") for k, v in value.items()})
        elif kind is inspect.Parameter.VAR_POSITIONAL:
            raise TypeError(f"{cls.__name__} was built with *{name}; pass build=kit.hub.recipe(...)")
        else:
            values[name] = _as_json(value, f"{cls.__name__}({name}=...)")
    return recipe(f"{cls.__module__}:{cls.__qualname__}", **values)


def _as_json(value: Any, where: str) -> Any:
    from .models import Rebuildable

    if isinstance(value, Rebuildable):
        return recipe_of(value)
    if isinstance(value, (list, tuple)):
        return [_as_json(v, where) for v in value]
    if isinstance(value, Mapping):
        return {str(k): _as_json(v, where) for k, v in value.items()}
    if value is None or isinstance(value, (bool, int, float, str)):
        return value
    raise TypeError(f"{where} is a {type(value).__name__}, which a recipe cannot hold; pass "
                    "build=kit.hub.recipe(...)")


def _callable(build: Any) -> Any:
    if not isinstance(build, str) or ":" not in build:
        raise ValueError(f"build must name a kit callable as 'kit.module:name'; got {build!r}")
    module, name = build.split(":", 1)
    if module != "kit" and not module.startswith("kit."):
        raise ValueError(f"build {build!r} is outside the kit; only kit callables are rebuilt (no foreign code runs)")
    try:
        target = getattr(importlib.import_module(module), name)
    except (ImportError, AttributeError) as err:
        raise ValueError(f"build {build!r} names nothing in this kit version ({err})") from err
    if not callable(target):
        raise ValueError(f"build {build!r} is not callable")
    return target


def _construct(spec: Any) -> Any:
    if isinstance(spec, Mapping) and "build" in spec:
        kwargs = spec.get("kwargs", {})
        if not isinstance(kwargs, Mapping):
            raise ValueError(f"the kwargs of {spec['build']!r} must be a mapping; got {type(kwargs).__name__}")
        return _callable(spec["build"])(**{k: _construct(v) for k, v in kwargs.items()})
    if isinstance(spec, list):
        return [_construct(v) for v in spec]
    return spec


def _check_json(value: Any, where: str) -> None:
    try:
        json.dumps(value)
    except (TypeError, ValueError) as err:
        raise TypeError(f"{where} must hold JSON values (numbers, strings, lists, mappings); {err}") from err


def model_card(config: Mapping[str, Any]) -> str:
    """The README.md of an artefact: front matter for the hub, the method, its parameters and metrics, how to load."""
    method = config.get("method", "model")
    lines = ["---", "library_name: kit", "tags:", f"- {method}", "- kit", "---", "",
             f"# {config.get('name', method)}", "", config.get("description", f"A {method} model saved by the kit."),
             "", f"- method: `{method}`", f"- built by: `{config['model']['build']}`",
             f"- parameters: {config.get('parameter_count', '?'):,}" if isinstance(config.get("parameter_count"), int)
             else "- parameters: ?"]
    if config.get("masks"):
        lines.append(f"- pruned: {len(config['masks'])} masked tensors, sparsity {config.get('sparsity', 0):.1%}")
    for title, key in (("Parameters", "parameters"), ("Metrics", "metrics")):
        if config.get(key):
            lines += ["", f"## {title}", "", "| name | value |", "|---|---|"]
            lines += [f"| {k} | {v} |" for k, v in config[key].items()]
    lines += ["", "## Load", "", "```python", "import kit", "", 'loaded = kit.hub.load("<this folder or hub id>")',
              "model = loaded.model", "```", ""]
    return "\n".join(lines)


def save(model: nn.Module, folder: str | os.PathLike, *, method: str, build: Mapping[str, Any] | None = None,
         parameters: Mapping[str, Any] | None = None, metrics: Mapping[str, Any] | None = None,
         name: str | None = None, description: str | None = None) -> Path:
    """Save ``model`` (weights and pruning masks) with the recipe that rebuilds it (``build``; by default the one it
    remembers, see :func:`recipe_of`), the method, its parameters and metrics, and a model card; the folder is
    written whole or not at all."""
    from safetensors.torch import save_file

    from . import __version__

    if not isinstance(model, nn.Module):
        raise TypeError(f"model must be a torch.nn.Module; got {type(model).__name__}")
    if build is None:
        build = recipe_of(model)
    if not isinstance(build, Mapping) or "build" not in build:
        raise TypeError("build must be a recipe from kit.hub.recipe('kit.module:name', **kwargs)")
    _callable(build["build"])
    if not isinstance(method, str) or not method:
        raise ValueError(f"method must be a non-empty string (e.g. 'imp', 'sfw', 'npr'); got {method!r}")
    parameters, metrics = dict(parameters or {}), dict(metrics or {})
    for what, value in (("build", build), ("parameters", parameters), ("metrics", metrics)):
        _check_json(value, what)
    state = {k: v.detach().cpu().contiguous().clone() for k, v in model.state_dict().items()}
    masks = sorted(k for k in state if k.endswith(MASK))
    kept = sum(int(state[k].count_nonzero()) for k in masks)
    total = sum(state[k].numel() for k in masks)
    config = {"format": FORMAT, "kit_version": __version__, "model": dict(build), "method": method,
              "parameters": parameters, "metrics": metrics, "masks": masks,
              "sparsity": 1 - kept / total if total else 0.0,
              "parameter_count": sum(p.numel() for p in model.parameters()),
              **({"name": name} if name else {}), **({"description": description} if description else {})}
    target = Path(folder)
    if target.exists() and not target.is_dir():
        raise ValueError(f"folder {target} exists and is not a folder")
    target.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(dir=target.parent, prefix=f".{target.name}."))
    try:
        save_file(state, str(staging / WEIGHTS), metadata={"format": "pt", "kit": FORMAT})
        (staging / CONFIG).write_text(json.dumps(config, indent=2))
        (staging / CARD).write_text(model_card(config))
        if target.exists():
            for f in (WEIGHTS, CONFIG, CARD):
                (target / f).unlink(missing_ok=True)
            for f in (WEIGHTS, CONFIG, CARD):
                os.replace(staging / f, target / f)
            shutil.rmtree(staging)
        else:
            os.replace(staging, target)
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise
    return target


def _resolve(source: str | os.PathLike, cache_dir: str | os.PathLike | None, revision: str | None) -> Path:
    path = Path(source)
    if path.is_dir():
        return path
    text = str(source)
    if path.exists() or text.count("/") != 1 or text.startswith((".", "/")):
        raise FileNotFoundError(f"{source} is neither a folder saved by kit.hub.save nor a hub id 'owner/name'")
    from huggingface_hub import snapshot_download

    return Path(snapshot_download(text, revision=revision, cache_dir=cache_dir,
                                  allow_patterns=[WEIGHTS, CONFIG, CARD]))


def read_config(folder: str | os.PathLike) -> dict[str, Any]:
    """An artefact's config.json, checked: its files are there, its format is the kit's, its kit version compatible."""
    from . import __version__

    folder = Path(folder)
    missing = [f for f in (WEIGHTS, CONFIG) if not (folder / f).is_file()]
    if missing:
        raise ValueError(f"{folder} is not a kit artefact: it lacks {', '.join(missing)} (write one with "
                         "kit.hub.save)")
    try:
        config = json.loads((folder / CONFIG).read_text())
    except json.JSONDecodeError as err:
        raise ValueError(f"{folder / CONFIG} is not valid JSON: {err}") from err
    if not isinstance(config, dict) or config.get("format", "").split("/")[0] != FORMAT.split("/")[0]:
        raise ValueError(f"{folder} is not a kit artefact: its config.json has format {config.get('format')!r}, "
                         f"not {FORMAT!r}")
    if config["format"] != FORMAT or str(config.get("kit_version", "")).split(".")[:1] != __version__.split(".")[:1]:
        raise ValueError(f"{folder} was written by kit {config.get('kit_version')} in format {config['format']}; "
                         f"this kit ({__version__}) reads {FORMAT} from kit {__version__.split('.')[0]}.x")
    return config


def load(source: str | os.PathLike, *, cache_dir: str | os.PathLike | None = None, revision: str | None = None,
         device: str | torch.device | None = None) -> Loaded:
    """Rebuild a saved model from a folder or a hub id, with its weights and exact masks (see the module docstring)."""
    from safetensors import SafetensorError
    from safetensors.torch import load_file

    folder = _resolve(source, cache_dir, revision)
    config = read_config(folder)
    try:
        state = load_file(str(folder / WEIGHTS))
    except (SafetensorError, OSError) as err:
        raise ValueError(f"{folder / WEIGHTS} is not a readable safetensors file: {err}") from err
    model = _construct(config["model"])
    if not isinstance(model, nn.Module):
        raise ValueError(f"{config['model']['build']} built a {type(model).__name__}, not a torch.nn.Module")
    for key in sorted(k for k in state if k.endswith(MASK)):
        _apply_mask(model, key, state)
    result = model.load_state_dict(state, strict=False)
    if result.missing_keys or result.unexpected_keys:
        raise ValueError(f"the weights in {folder} do not fit the rebuilt {type(model).__name__}: missing "
                         f"{result.missing_keys[:5]}, unexpected {result.unexpected_keys[:5]}")
    if device is not None:
        model.to(device)
    card = (folder / CARD).read_text() if (folder / CARD).is_file() else ""
    return Loaded(model, config, card, folder)


def _apply_mask(model: nn.Module, key: str, state: Mapping[str, torch.Tensor]) -> None:
    prefix, _, leaf = key.rpartition(".")
    param = leaf[: -len(MASK)]
    mask = state[key]
    weights = state.get(f"{prefix}.{param}_orig" if prefix else f"{param}_orig")
    try:
        module = model.get_submodule(prefix) if prefix else model
    except AttributeError as err:
        raise ValueError(f"mask {key} names no module of the rebuilt model") from err
    if weights is None or not hasattr(module, param):
        raise ValueError(f"mask {key} has no weights {param}_orig to mask")
    if mask.shape != weights.shape or getattr(module, param).shape != mask.shape:
        raise ValueError(f"mask {key} has shape {tuple(mask.shape)}, which does not match the weights "
                         f"{tuple(weights.shape)}")
    if not bool(((mask == 0) | (mask == 1)).all()):
        raise ValueError(f"mask {key} holds values other than 0 and 1")
    prune.custom_from_mask(module, param, mask.to(getattr(module, param).dtype))
