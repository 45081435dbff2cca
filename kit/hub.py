"""The kit's trained artefacts in the Hugging Face hub layout: save a model to a folder, load it from a folder or a
hub id.

A saved folder holds ``model.safetensors`` (every tensor of the model's state dict: pruning masks, kept exactly,
and buffers included), ``config.json`` (the format and kit version, how to rebuild the model, the method, its
parameters and metrics) and ``README.md`` (a model card). The model is rebuilt from a recipe of kit callables,
``{"build": "kit.models:MLP", "kwargs": {...}}``, whose arguments may themselves be such recipes (an NPR operator
takes a problem: ``{"build": "kit.operators:NPR", "kwargs": {"problem": {"build": "kit.operators:Heat", "kwargs":
{"alpha": 0.02}}}}``); only callables inside ``kit`` are built, so loading runs no foreign code.

A language model retrained with PERP's adapters (:mod:`kit.perp`) is saved as what its base model cannot give:
the adapters, the pruning masks (packed eight to a byte) and every tensor that retraining or pruning changed (norms;
SparseGPT's updated weights). The recipe then rebuilds the base (``kit.language:pretrained_lm`` or
``tiny_llama``), and every tensor not stored is checked against a SHA-256 fingerprint taken at saving, so a base
that changed since (another model revision, another conversion) is refused rather than silently used.

``load`` checks everything before it returns: the files, the format and the kit version, that every mask matches
its weight and holds only 0 and 1, that the weights fit the rebuilt model; a failure raises and hands back nothing
half-loaded.
"""

from __future__ import annotations

import hashlib
import importlib
import inspect
import json
import math
import os
import shutil
import tempfile
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from torch import nn

from .pruning import apply_masks
from .runs import as_if_written

FORMAT = "kit.hub/1"
WEIGHTS, CONFIG, CARD = "model.safetensors", "config.json", "README.md"
MASK, ORIG = "_mask", "_orig"
ADAPTERS = "adapters"  # config["kind"] of an artefact stored as adapters and changes on top of a rebuilt base


@dataclass
class Loaded:
    """A loaded artefact: the rebuilt model with its weights and masks, its config and its model card."""

    model: nn.Module
    config: dict[str, Any]
    card: str = ""
    folder: Path = field(default_factory=Path)
    constraints: dict[str, Any] = field(default_factory=dict)  # parameter name -> its Frank-Wolfe region, if saved


def recipe(build: str, **kwargs: Any) -> dict[str, Any]:
    """A rebuild recipe: the kit callable ``"module:name"`` and its keyword arguments (JSON values or recipes)."""
    _callable(build)
    return {"build": build, "kwargs": kwargs}


def recipe_of(obj: Any) -> dict[str, Any]:
    """The recipe that rebuilds ``obj`` from the constructor call it remembers (kit models, problems, ...): its
    arguments as JSON values or, for kit objects among them, nested recipes."""
    from .models import Rebuildable

    if isinstance(getattr(obj, "kit_recipe", None), Mapping):  # language models the kit loaded
        return {"build": obj.kit_recipe["build"], "kwargs": dict(obj.kit_recipe.get("kwargs", {}))}
    if not isinstance(obj, Rebuildable) or obj.rebuild_args() is None:
        raise TypeError(f"{type(obj).__name__} does not remember how it was built (only kit models, problems and "
                        "the language models of kit.language do); pass build=kit.hub.recipe('kit.module:name', "
                        "**kwargs)")
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
    if config.get("kind") == ADAPTERS:
        a = config["adapters"]
        lines += [f"- adapters: {a['kind']} LoRA of rank {a['rank']} (alpha {a['alpha']:g}) on {len(a['targets'])} "
                  f"Linears of the base above; stored: {len(config['stored'])} tensors (adapters and what "
                  f"retraining changed), the other {len(config['fingerprints'])} come from the base and are checked "
                  "by SHA-256", "- fold the adapters in after loading: `kit.perp.merge(model)` (sparsity kept)"]
    if config.get("constraints"):
        kinds: dict[str, int] = {}
        for spec in config["constraints"].values():
            kind = spec["build"].rsplit(":", 1)[-1]
            kinds[kind] = kinds.get(kind, 0) + 1
        lines.append("- trained in constraint sets: " + ", ".join(f"{k} x {n}" for k, n in kinds.items())
                     + " (`loaded.constraints`)")
    for title, key in (("Parameters", "parameters"), ("Metrics", "metrics")):
        if config.get(key):
            lines += ["", f"## {title}", "", "| name | value |", "|---|---|"]
            lines += [f"| {k} | {v} |" for k, v in config[key].items()]
    lines += ["", "## Load", "", "```python", "import kit", "", 'loaded = kit.hub.load("<this folder or hub id>")',
              "model = loaded.model", "```", ""]
    return "\n".join(lines)


def save(model: nn.Module, folder: str | os.PathLike, *, method: str, build: Mapping[str, Any] | None = None,
         parameters: Mapping[str, Any] | None = None, metrics: Mapping[str, Any] | None = None,
         name: str | None = None, description: str | None = None, base: nn.Module | None = None,
         constraints: Mapping[str, Any] | torch.optim.Optimizer | None = None) -> Path:
    """Save ``model`` (weights and pruning masks) with the recipe that rebuilds it (``build``; by default the one it
    remembers, see :func:`recipe_of`), the method, its parameters and metrics, and a model card; the folder is
    written whole or not at all. A model with PERP adapters (not yet merged) is saved as its adapters, masks and
    changed tensors on top of the base that ``build`` rebuilds (see the module docstring); ``base``, that base model
    when it is at hand and unchanged, is copied instead of rebuilt. ``constraints``: the Frank-Wolfe regions the
    model was trained in, as the optimizer (``SFW``, ``ProjectedSGD``, ...) or a mapping parameter name -> region;
    saved with their current radius and k, and rebuilt by :func:`load` (``Loaded.constraints``)."""
    from safetensors.torch import save_file

    from . import __version__
    from .perp import adapter_settings

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
    regions = {} if constraints is None else _region_recipes(model, constraints)
    adapters = adapter_settings(model)
    if base is not None:
        if adapters is None:
            raise ValueError("base is only for models with PERP adapters (kit.perp.add_lora or retrain with 'lora'); "
                             "this model is saved whole")
        if not isinstance(base, nn.Module):
            raise TypeError(f"base must be the torch.nn.Module that build rebuilds; got {type(base).__name__}")
        if getattr(base, "kit_recipe", None) is not None and recipe_of(base) != dict(build):
            raise ValueError(f"base was built by {recipe_of(base)}, not by the model's recipe {dict(build)}")
        if adapter_settings(base) is not None:
            raise ValueError("base must be the model before adapters were added; it has adapters")
    state, extra = _whole_state(model) if adapters is None else _adapter_state(model, build, adapters, base)
    masks = {k: v for k, v in model.state_dict().items() if k.endswith(MASK)}
    kept = sum(int(m.count_nonzero()) for m in masks.values())
    total = sum(m.numel() for m in masks.values())
    config = {"format": FORMAT, "kit_version": __version__, "model": dict(build), "method": method,
              "parameters": parameters, "metrics": metrics, "masks": sorted(masks),
              "sparsity": 1 - kept / total if total else 0.0,
              "parameter_count": sum(p.numel() for p in model.parameters()), **extra,
              **({"constraints": regions} if regions else {}),
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
        for f in (staging, staging / WEIGHTS, staging / CONFIG, staging / CARD):
            as_if_written(f)
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


def _region_recipes(model: nn.Module, constraints: Mapping[str, Any] | torch.optim.Optimizer) -> dict[str, Any]:
    from .frankwolfe import Constraint

    params = dict(model.named_parameters())
    names = {id(p): n for n, p in params.items()}
    if isinstance(constraints, torch.optim.Optimizer):
        if any("constraints" not in g for g in constraints.param_groups):
            raise ValueError("constraints: the optimizer holds no regions; pass a kit.frankwolfe optimizer (SFW, "
                             "ProjectedSGD, ...) or a mapping parameter name -> region")
        pairs = {}
        for group in constraints.param_groups:
            for param, region in zip(group["params"], group["constraints"], strict=True):
                if id(param) not in names:
                    raise ValueError("constraints: the optimizer trains a parameter that is not the model's")
                pairs[names[id(param)]] = region
    elif isinstance(constraints, Mapping):
        pairs = dict(constraints)
        unknown = sorted(set(pairs) - set(params))
        if unknown:
            raise ValueError(f"constraints: the model has no parameters named {unknown[:5]}")
    else:
        raise TypeError(f"constraints must be a kit.frankwolfe optimizer or a mapping parameter name -> region; got "
                        f"{type(constraints).__name__}")
    for name, region in pairs.items():
        if not isinstance(region, Constraint):
            raise TypeError(f"constraints[{name!r}] must be a kit.frankwolfe region; got {type(region).__name__}")
        if tuple(region.shape) != tuple(params[name].shape):
            raise ValueError(f"constraints[{name!r}] has shape {tuple(region.shape)}, the parameter "
                             f"{tuple(params[name].shape)}")
    return {name: recipe_of(pairs[name]) for name in sorted(pairs)}


def _whole_state(model: nn.Module) -> tuple[dict[str, torch.Tensor], dict[str, Any]]:
    return {k: v.detach().cpu().contiguous().clone() for k, v in model.state_dict().items()}, {}


def _pack(mask: torch.Tensor) -> torch.Tensor:
    """A 0/1 mask as bits, eight to a byte (most significant first)."""
    bits = mask.detach().cpu().reshape(-1).to(torch.uint8)
    bits = torch.cat([bits, bits.new_zeros((-bits.numel()) % 8)]).reshape(-1, 8)
    return (bits << torch.arange(7, -1, -1, dtype=torch.uint8)).sum(1, dtype=torch.uint8)


def _unpack(packed: torch.Tensor, shape: list[int], key: str) -> torch.Tensor:
    count = math.prod(shape)
    if packed.dtype != torch.uint8 or packed.dim() != 1 or packed.numel() != math.ceil(count / 8):
        raise ValueError(f"mask {key} does not match the weights: {packed.numel()} packed bytes of "
                         f"{packed.dtype} for a mask of shape {tuple(shape)}")
    bits = (packed[:, None] >> torch.arange(7, -1, -1, dtype=torch.uint8)) & 1
    return bits.reshape(-1)[:count].reshape(shape).float()


def _plain_state(model: nn.Module) -> dict[str, torch.Tensor]:
    """The state dict on the CPU without masks, each masked weight zero where masked (``+0.0``, whatever the
    masking left there), so equal models give equal bytes."""
    state = model.state_dict()
    plain = {}
    for key, value in state.items():
        if key.endswith(MASK):
            continue
        value = value.detach().cpu()
        mask = state.get(key[: -len(ORIG)] + MASK) if key.endswith(ORIG) else None
        if mask is not None:
            value = torch.where(mask.cpu().bool(), value, torch.zeros((), dtype=value.dtype))
        plain[key] = value.contiguous()
    return plain


def _digest(tensor: torch.Tensor) -> str:
    data = tensor.detach().cpu().contiguous().reshape(-1).view(torch.uint8).numpy()
    head = f"{tensor.dtype}{tuple(tensor.shape)}".encode()
    return hashlib.sha256(head + data.tobytes()).hexdigest()


def _rebuild_adapted(build: Mapping[str, Any], adapters: Mapping[str, Any], masks: Mapping[str, torch.Tensor],
                     base: nn.Module | None = None) -> nn.Module:
    from .perp import restore_adapters
    from .pruning import copy_model

    model = _construct(build) if base is None else copy_model(base).cpu()
    if not isinstance(model, nn.Module):
        raise ValueError(f"{build['build']} built a {type(model).__name__}, not a torch.nn.Module")
    restore_adapters(model, adapters)
    for key, mask in sorted(masks.items()):
        _apply_mask(model, key, mask)
    return model


def _adapter_state(model: nn.Module, build: Mapping[str, Any], adapters: dict[str, Any], base: nn.Module | None
                   ) -> tuple[dict[str, torch.Tensor], dict[str, Any]]:
    """What the base rebuilt from ``build`` cannot give (adapters, packed masks, changed tensors), with
    fingerprints of the rest."""
    state = model.state_dict()
    masks = {k: v.detach().cpu() for k, v in state.items() if k.endswith(MASK)}
    for key, mask in masks.items():
        if not bool(((mask == 0) | (mask == 1)).all()):
            raise ValueError(f"mask {key} holds values other than 0 and 1")
    mine = _plain_state(model)
    theirs = _plain_state(_rebuild_adapted(build, adapters, masks, base))
    if mine.keys() != theirs.keys():
        raise ValueError(f"the model does not fit its base rebuilt from {build['build']}: tensors only in the model "
                         f"{sorted(mine.keys() - theirs.keys())[:5]}, only in the base "
                         f"{sorted(theirs.keys() - mine.keys())[:5]}")
    changed = {k: v.clone() for k, v in mine.items() if k.rsplit(".", 1)[-1] in ("lora_A", "lora_B")
               or v.dtype != theirs[k].dtype or v.shape != theirs[k].shape or not torch.equal(v, theirs[k])}
    extra = {"kind": ADAPTERS, "adapters": adapters, "stored": sorted(changed),
             "mask_shapes": {k: list(m.shape) for k, m in masks.items()},
             "fingerprints": {k: _digest(v) for k, v in sorted(mine.items()) if k not in changed}}
    return {**changed, **{k: _pack(m) for k, m in masks.items()}}, extra


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
    model = (_load_adapted(folder, config, state) if config.get("kind") == ADAPTERS
             else _load_whole(folder, config, state))
    regions = _load_regions(model, config.get("constraints", {}))
    if device is not None:
        model.to(device)
    card = (folder / CARD).read_text() if (folder / CARD).is_file() else ""
    return Loaded(model, config, card, folder, regions)


def _load_regions(model: nn.Module, recipes: Mapping[str, Any]) -> dict[str, Any]:
    from .frankwolfe import Constraint

    params = dict(model.named_parameters())
    regions = {}
    for name, spec in recipes.items():
        region = _construct(spec)
        if name not in params or not isinstance(region, Constraint) or tuple(region.shape) != tuple(
                params[name].shape):
            raise ValueError(f"the saved region of {name!r} ({spec.get('build')}) does not fit a parameter of the "
                             "rebuilt model")
        regions[name] = region
    return regions


def _load_whole(folder: Path, config: Mapping[str, Any], state: dict[str, torch.Tensor]) -> nn.Module:
    model = _construct(config["model"])
    if not isinstance(model, nn.Module):
        raise ValueError(f"{config['model']['build']} built a {type(model).__name__}, not a torch.nn.Module")
    for key in sorted(k for k in state if k.endswith(MASK)):
        _apply_mask(model, key, state[key])
    _load_exactly(model, folder, state)
    return model


def _load_exactly(model: nn.Module, folder: Path, state: Mapping[str, torch.Tensor],
                  left: set[str] | frozenset[str] = frozenset()) -> None:
    result = model.load_state_dict(state, strict=False)
    missing = [k for k in result.missing_keys if k not in left]
    if missing or result.unexpected_keys:
        raise ValueError(f"the weights in {folder} do not fit the rebuilt {type(model).__name__}: missing "
                         f"{missing[:5]}, unexpected {result.unexpected_keys[:5]}")


def _load_adapted(folder: Path, config: Mapping[str, Any], state: dict[str, torch.Tensor]) -> nn.Module:
    shapes, stored, prints = config.get("mask_shapes", {}), config.get("stored", []), config.get("fingerprints", {})
    if set(state) != set(stored) | set(config["masks"]) or set(shapes) != set(config["masks"]):
        raise ValueError(f"{folder / WEIGHTS} does not hold what its config.json lists (stored tensors and masks)")
    masks = {k: _unpack(state[k], shapes[k], k) for k in config["masks"]}
    model = _rebuild_adapted(config["model"], config["adapters"], masks)
    masked = {k for k in model.state_dict() if k.endswith(MASK)}
    _load_exactly(model, folder, {k: state[k] for k in stored}, left=set(prints) | masked)
    plain = _plain_state(model)
    unaccounted = sorted(plain.keys() - set(stored) - set(prints))
    if unaccounted:
        raise ValueError(f"the base rebuilt from {config['model']['build']} has tensors the artefact in {folder} "
                         f"neither stores nor fingerprints: {unaccounted[:5]}")
    differ = [k for k, digest in sorted(prints.items()) if k not in plain or _digest(plain[k]) != digest]
    if differ:
        raise ValueError(f"the base rebuilt from {config['model']['build']} ({config['model'].get('kwargs')}) is not "
                         f"the one the adapters in {folder} were trained on: {len(differ)} tensors differ from their "
                         f"fingerprints (e.g. {differ[:3]}); another model revision or conversion?")
    return model


def _apply_mask(model: nn.Module, key: str, mask: torch.Tensor) -> None:
    prefix, _, leaf = key.rpartition(".")
    param = leaf[: -len(MASK)]
    try:
        module = model.get_submodule(prefix) if prefix else model
    except AttributeError as err:
        raise ValueError(f"mask {key} names no module of the rebuilt model") from err
    weights = getattr(module, param, None)
    if not isinstance(weights, torch.Tensor):
        raise ValueError(f"mask {key} has no weights {param} to mask")
    if mask.shape != weights.shape:
        raise ValueError(f"mask {key} has shape {tuple(mask.shape)}, which does not match the weights "
                         f"{tuple(weights.shape)}")
    if not bool(((mask == 0) | (mask == 1)).all()):
        raise ValueError(f"mask {key} holds values other than 0 and 1")
    apply_masks(model, {prefix: mask}, param=param)  # the kit's one mask mechanism, as pruning made them
