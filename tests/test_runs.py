"""kit.runs: derived seeds against NumPy's SeedSequence, fingerprints by content, checkpoints that are atomic,
weights-only, refuse other runs, name bad files and fall back to the last intact one."""

from __future__ import annotations

import pickle
import warnings

import numpy as np
import pytest
import torch
from hypothesis import given
from hypothesis import strategies as st
from torch import nn
from torch.utils.data import TensorDataset

from kit import data as data_mod
from kit.runs import (
    CheckpointError,
    Checkpoints,
    derive_seed,
    fingerprint,
    fingerprint_data,
    fingerprint_model,
    fingerprint_schedule,
    hash_tensors,
    load_weights_only,
    save_atomic,
)
from kit.schedules import Constant, Linear


@given(st.integers(0, 2**63 - 1), st.lists(st.integers(0, 2**31), max_size=3))
def test_derive_seed_is_numpy_seed_sequence_shifted_into_63_bits(seed, keys):
    want = int(np.random.SeedSequence([seed, *keys]).generate_state(1, dtype=np.uint64)[0]) >> 1
    got = derive_seed(seed, *keys)
    assert got == want and 0 <= got < 2**63


def test_derived_seeds_differ_between_neighbouring_keys_and_reject_bad_input():
    seeds = {derive_seed(0, phase) for phase in range(1000)} | {derive_seed(1, phase) for phase in range(1000)}
    assert len(seeds) == 2000
    with pytest.raises(ValueError, match="seed"):
        derive_seed(-1, 2)
    with pytest.raises(ValueError, match=r"keys\[0\]"):
        derive_seed(0, -2)
    with pytest.raises(TypeError, match=r"keys\[1\]"):
        derive_seed(0, 1, 2.5)


def test_fingerprints_follow_content_not_identity():
    torch.manual_seed(0)
    a = nn.Linear(3, 2)
    b = nn.Linear(3, 2)
    b.load_state_dict(a.state_dict())
    assert fingerprint_model(a) == fingerprint_model(b)
    with torch.no_grad():
        b.bias[0] += 1e-7
    assert fingerprint_model(a) != fingerprint_model(b)
    x = torch.arange(6.0).reshape(3, 2)
    assert hash_tensors({"x": x}) != hash_tensors({"x": x.double()})  # dtype counts
    assert hash_tensors({"x": x}) != hash_tensors({"x": x.reshape(2, 3)})  # shape counts
    assert fingerprint({"a": 1, "b": [1, 2]}) == fingerprint({"b": [1, 2], "a": 1})
    assert fingerprint_schedule(Linear(0.1, 0.0, 100), 100) != fingerprint_schedule(Constant(0.1), 100)
    with pytest.raises(TypeError, match="plain values"):
        fingerprint({"model": a})


def test_data_fingerprint_sees_the_values_not_just_the_sizes():
    splits = data_mod.load("digits", seed=0)
    same = data_mod.load("digits", seed=0)
    assert repr(splits) == repr(same) and fingerprint_data(splits) == fingerprint_data(same)
    rescaled = data_mod.load("digits", seed=0)
    rescaled.train = TensorDataset(rescaled.train.tensors[0] * 2, rescaled.train.tensors[1])
    assert repr(rescaled) == repr(splits)  # what the 0.1 fingerprint compared
    assert fingerprint_data(rescaled) != fingerprint_data(splits)
    with pytest.raises(TypeError, match=r"Dataset or kit\.data\.Splits"):
        fingerprint_data([1, 2, 3])


def store(tmp_path, **kwargs) -> Checkpoints:
    return Checkpoints(tmp_path / "ckpt", prefix="run", format="test/1", kind="test", **kwargs)


def test_checkpoints_round_trip_and_refuse_other_runs(tmp_path):
    s = store(tmp_path)
    assert s.latest({"seed": 0}) is None
    s.save(1, {"seed": 0}, {"w": torch.ones(2), "records": [{"a": 1.0}]})
    s.save(2, {"seed": 0}, {"w": torch.full((2,), 2.0), "records": [{"a": 1.0}, {"a": 2.0}]})
    assert s.numbers() == [1, 2]
    assert sorted(p.name for p in s.directory.iterdir()) == ["run-001.pt", "run-002.pt"]  # no temporary files
    got = s.latest({"seed": 0})
    assert got["number"] == 2 and torch.equal(got["w"], torch.full((2,), 2.0)) and got["records"][1] == {"a": 2.0}
    with pytest.raises(CheckpointError, match=r"different test run \(seed: checkpoint 0, now 1\)"):
        s.latest({"seed": 1})
    with pytest.raises(ValueError, match="reserved"):
        s.save(3, {"seed": 0}, {"config": 1})


def test_keep_bounds_the_checkpoints_on_disk(tmp_path):
    s = store(tmp_path, keep=2)
    for n in range(1, 5):
        s.save(n, {}, {"n": n})
    assert s.numbers() == [3, 4]


def test_a_corrupt_newest_checkpoint_falls_back_with_a_warning_naming_it(tmp_path):
    s = store(tmp_path)
    s.save(1, {}, {"w": torch.ones(1)})
    s.save(2, {}, {"w": torch.ones(1) * 2})
    data = s.path(2).read_bytes()
    s.path(2).write_bytes(data[: len(data) // 2])  # truncated
    with pytest.warns(RuntimeWarning, match=r"run-002\.pt"):
        got = s.latest({})
    assert got["number"] == 1
    s.path(1).write_bytes(b"")  # now nothing intact is left
    with pytest.raises(CheckpointError, match=r"no readable run checkpoint.*run-001\.pt.*empty"):
        s.latest({})


def test_a_foreign_checkpoint_is_refused_by_name(tmp_path):
    s = store(tmp_path)
    s.directory.mkdir(parents=True)
    torch.save({"format": "other/1", "config": {}}, s.path(1))
    with pytest.raises(CheckpointError, match=r"run-001\.pt is not a test checkpoint of format 'test/1'"):
        s.latest({})


class Payload:
    """Unpickling this writes a marker file: what a crafted checkpoint could do."""

    def __init__(self, marker: str) -> None:
        self.marker = marker

    def __reduce__(self):
        return (open, (self.marker, "w"))


def test_a_crafted_checkpoint_runs_no_code(tmp_path):
    marker = tmp_path / "pwned"
    path = tmp_path / "evil.pt"
    path.write_bytes(pickle.dumps({"format": "test/1", "x": Payload(str(marker))}))
    with pytest.raises(CheckpointError, match=r"evil\.pt"):
        load_weights_only(path)
    assert not marker.exists()
    s = store(tmp_path)
    s.directory.mkdir(parents=True)
    s.path(1).write_bytes(path.read_bytes())
    with pytest.raises(CheckpointError, match="no readable"):
        s.latest({})
    assert not marker.exists()


def test_save_atomic_leaves_the_old_file_when_saving_fails(tmp_path, monkeypatch):
    path = save_atomic({"v": 1}, tmp_path / "a.pt")

    def broken(obj, f):
        raise OSError("disk full")

    monkeypatch.setattr(torch, "save", broken)
    with pytest.raises(OSError, match="disk full"):
        save_atomic({"v": 2}, path)
    monkeypatch.undo()
    assert load_weights_only(path) == {"v": 1}
    assert [p.name for p in tmp_path.iterdir()] == ["a.pt"]


def test_checkpoints_reject_bad_folders_and_prefixes(tmp_path):
    (tmp_path / "file").write_text("x")
    with pytest.raises(NotADirectoryError):
        Checkpoints(tmp_path / "file", prefix="run", format="f")
    with pytest.raises(ValueError, match="prefix"):
        Checkpoints(tmp_path, prefix="a/b", format="f")
    with pytest.raises(TypeError, match="folder path"):
        Checkpoints(3, prefix="run", format="f")
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert Checkpoints(tmp_path / "new", prefix="run", format="f").latest({}) is None  # no folder yet: fresh
