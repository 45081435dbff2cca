"""kit.language: token windows, Shakespeare play splits, tokenizing, perplexity and greedy generation.

Windows are checked index by index against the token stream (hypothesis), perplexity against a
constant-logit model (exactly V) and against one batched ``cross_entropy`` over every window,
generation against a hand-written greedy loop. Only the tiny random Llama and the byte tokenizer are
used; the real SmolLM2 model is never loaded.
"""

from __future__ import annotations

import math

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st
from torch import nn
from torch.nn import functional as F

from kit.data import shakespeare_works
from kit.language import (
    ByteTokenizer,
    CausalLM,
    PlaySplits,
    TokenWindows,
    generate,
    load_causal_lm,
    perplexity,
    play_splits,
    text_windows,
    tiny_llama,
    tokenize,
)

pytestmark = pytest.mark.usefixtures("one_thread")


@pytest.fixture(scope="module")
def llama():
    return tiny_llama(seed=0)


@pytest.fixture(scope="module")
def plays():
    """Titles of the works longer than 80k characters (the plays), computed here from the texts."""
    return {t for t, x in shakespeare_works().items() if len(x) > 80_000}


# --------------------------------------------------------------------------------------- TokenWindows

@settings(max_examples=80, deadline=None)
@given(length=st.integers(1, 200), window=st.integers(1, 24))
def test_from_ids_predicts_every_token_after_the_first_exactly_once(length, window):
    ids = torch.arange(1000, 1000 + length)
    if length < window + 1:
        with pytest.raises(ValueError, match="text too short"):
            TokenWindows.from_ids(ids, window)
        return
    windows = TokenWindows.from_ids(ids, window)
    n = (length - 1) // window  # the tail that does not fill a window is dropped
    assert len(windows) == n and windows.window == window and windows.tokens == n * window
    inputs = torch.cat([windows[i][0] for i in range(n)])
    targets = torch.cat([windows[i][1] for i in range(n)])
    assert torch.equal(targets, ids[1 : 1 + n * window])
    assert torch.equal(inputs, ids[: n * window])
    for i in range(n):
        x, y = windows[i]
        assert x.shape == y.shape == (window,)
        assert torch.equal(x[1:], y[:-1])  # targets are the inputs shifted by one


def test_windows_rows_items_and_index_errors():
    windows = TokenWindows.from_ids(torch.arange(11), 5)
    assert windows.rows.tolist() == [[0, 1, 2, 3, 4, 5], [5, 6, 7, 8, 9, 10]]
    assert windows.rows.dtype == torch.long
    with pytest.raises(IndexError, match="out of range"):
        windows[2]
    with pytest.raises(IndexError, match="out of range"):
        windows[-1]


@pytest.mark.parametrize("ids", [torch.arange(12).reshape(3, 4), torch.tensor(5), [1, 2, 3, 4]])
def test_from_ids_rejects_anything_but_a_1d_tensor(ids):
    with pytest.raises(TypeError, match="ids must be a 1-D tensor"):
        TokenWindows.from_ids(ids, 2)


def test_from_ids_and_constructor_reject_bad_window_and_rows():
    with pytest.raises(ValueError, match="window"):
        TokenWindows.from_ids(torch.arange(10), 0)
    with pytest.raises(TypeError, match="window"):
        TokenWindows.from_ids(torch.arange(10), 2.0)
    with pytest.raises(TypeError, match="rows must be a 2-D tensor"):
        TokenWindows(torch.arange(10))
    with pytest.raises(TypeError, match="rows must be a 2-D tensor"):
        TokenWindows(torch.zeros(3, 1, dtype=torch.long))


def test_sample_draws_distinct_original_rows_reproducibly():
    windows = TokenWindows.from_ids(torch.arange(401), 4)  # 100 windows, every row distinct
    original = {tuple(r) for r in windows.rows.tolist()}
    picked = windows.sample(10, seed=3)
    rows = [tuple(r) for r in picked.rows.tolist()]
    assert len(picked) == 10 and len(set(rows)) == 10 and set(rows) <= original
    assert torch.equal(windows.sample(10, seed=3).rows, picked.rows)
    assert not torch.equal(windows.sample(10, seed=4).rows, picked.rows)
    assert {tuple(r) for r in windows.sample(100, seed=1).rows.tolist()} == original
    with pytest.raises(ValueError, match="n must lie in"):
        windows.sample(101)
    with pytest.raises(ValueError, match="n must lie in"):
        windows.sample(0)


# --------------------------------------------------------------------------------------- perplexity

class ZeroLogits(nn.Module):
    """Uniform prediction over ``vocab`` classes: the perplexity is exactly ``vocab``."""

    def __init__(self, vocab: int) -> None:
        super().__init__()
        self.vocab = vocab
        self.dummy = nn.Parameter(torch.zeros(1))  # perplexity reads the device off the parameters

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.zeros(*x.shape, self.vocab) * self.dummy


@pytest.mark.parametrize("vocab", [2, 7, 256])
def test_perplexity_of_uniform_logits_is_the_vocabulary_size(vocab):
    windows = TokenWindows.from_ids(torch.randint(0, vocab, (53,), generator=torch.Generator().manual_seed(0)), 8)
    assert math.isclose(perplexity(ZeroLogits(vocab), windows, batch_size=4), vocab, rel_tol=1e-6)


def test_perplexity_equals_exp_mean_cross_entropy_of_one_batch(llama):
    ids = torch.randint(0, 256, (7 * 16 + 1,), generator=torch.Generator().manual_seed(1))
    windows = TokenWindows.from_ids(ids, 16)  # 7 windows: batches of 3 leave a partial last batch
    with torch.no_grad():
        rows = windows.rows
        logits = llama(rows[:, :-1])
        expect = math.exp(float(F.cross_entropy(logits.reshape(-1, 256), rows[:, 1:].reshape(-1))))
    llama.train()
    try:
        got = perplexity(llama, windows, batch_size=3)
        assert llama.training  # the mode is restored
    finally:
        llama.eval()
    assert math.isclose(got, expect, rel_tol=1e-5)
    assert 200 < got < 320  # an untrained model over 256 bytes is close to uniform


def test_perplexity_rejects_bad_input(llama):
    with pytest.raises(TypeError, match=r"windows must be a kit\.language\.TokenWindows"):
        perplexity(llama, torch.zeros(2, 5, dtype=torch.long))
    windows = TokenWindows.from_ids(torch.arange(20), 4)
    with pytest.raises(ValueError, match="batch_size"):
        perplexity(llama, windows, batch_size=0)


# --------------------------------------------------------------------------------------- play splits

def test_play_splits_are_disjoint_and_cover_exactly_the_plays(plays):
    splits = play_splits(seed=0, calibration=3, heldout=2)
    train, cal, held = set(splits.train), set(splits.calibration), set(splits.heldout)
    assert len(cal) == 3 and len(held) == 2 and len(train) == len(plays) - 5
    assert not (train & cal or train & held or cal & held)
    assert train | cal | held == plays
    assert all(list(part) == sorted(part) for part in (splits.train, splits.calibration, splits.heldout))
    works = shakespeare_works()
    assert splits.texts("heldout") == [works[t] for t in splits.heldout]


def test_play_splits_are_deterministic_per_seed_and_differ_across_seeds():
    assert play_splits(seed=5) == play_splits(seed=5)
    a, b = play_splits(seed=0), play_splits(seed=1)
    assert isinstance(a, PlaySplits)
    assert (a.calibration, a.heldout) != (b.calibration, b.heldout)


@pytest.mark.parametrize(("kwargs", "name"), [({"calibration": 0}, "calibration"), ({"heldout": 0}, "heldout"),
                                              ({"calibration": 1000}, "calibration"),
                                              ({"calibration": 2, "heldout": 1000}, "heldout")])
def test_play_splits_rejects_bad_counts(kwargs, name):
    with pytest.raises(ValueError, match=f"{name} must lie in"):
        play_splits(**kwargs)


def test_play_splits_rejects_a_bad_seed():
    with pytest.raises(ValueError, match="seed"):
        play_splits(seed=-1)
    with pytest.raises(TypeError, match="calibration"):
        play_splits(calibration=1.5)


# --------------------------------------------------------------------------------------- tokenize, windows

def test_byte_tokenizer_round_trips_utf8():
    tok = ByteTokenizer()
    text = "O Romeo, Romeo! — wherefore art thou?"
    ids = tok(text)["input_ids"]
    assert ids == list(text.encode("utf-8")) and tok.decode(ids) == text


@pytest.mark.parametrize("max_tokens", [1, 5, 17, 40])
def test_tokenize_cuts_at_exactly_max_tokens(max_tokens):
    texts = ["Friends, Romans, countrymen, lend me your ears;", "I come to bury Caesar"]
    ids = tokenize(ByteTokenizer(), texts, max_tokens=max_tokens)
    assert ids.dtype == torch.long and ids.shape == (max_tokens,)
    assert ids.tolist() == list(texts[0].encode())[:max_tokens]  # the first text is 47 bytes long


def test_tokenize_keeps_text_order_and_long_texts_survive_chunking():
    paragraphs = "\n\n".join(f"paragraph {i}: " + "x" * (i % 97) for i in range(3000))
    assert len(paragraphs) > 100_000  # several 20k-character chunks
    ids = tokenize(ByteTokenizer(), [paragraphs])
    assert ids.tolist() == list(paragraphs.encode())
    both = tokenize(ByteTokenizer(), ["first text", "second"])
    assert both[:10].tolist() == list(b"first text") and both[-6:].tolist() == list(b"second")


def test_text_windows_returns_at_most_the_requested_tokens():
    splits = play_splits(seed=0)
    windows = text_windows(ByteTokenizer(), splits, 64, {"train": 1000, "heldout": 300})
    assert set(windows) == {"train", "heldout"}
    assert windows["train"].tokens == 960 and windows["heldout"].tokens == 256  # floor(n / 64) windows
    assert windows["train"].rows[0].tolist() == list(splits.texts("train")[0].encode("utf-8"))[:65]
    with pytest.raises(ValueError, match=r"tokens\['train'\]"):
        text_windows(ByteTokenizer(), splits, 64, {"train": 10})


# --------------------------------------------------------------------------------------- models

def test_load_causal_lm_rejects_a_bad_source_before_loading(no_network):
    for source in (123, None, ""):
        with pytest.raises(TypeError, match="source must be"):
            load_causal_lm(source)


def test_causal_lm_rejects_a_non_module():
    with pytest.raises(TypeError, match=r"lm must be a torch\.nn\.Module"):
        CausalLM("not a model")


def test_tiny_llama_is_seeded_and_maps_ids_to_logits():
    a, b, c = tiny_llama(seed=0, layers=1), tiny_llama(seed=0, layers=1), tiny_llama(seed=1, layers=1)
    ids = torch.randint(0, 256, (2, 9), generator=torch.Generator().manual_seed(0))
    with torch.no_grad():
        out = a(ids)
        assert out.shape == (2, 9, 256)
        assert torch.equal(out, b(ids)) and not torch.allclose(out, c(ids))
    with pytest.raises(ValueError, match="multiple of heads"):
        tiny_llama(hidden=30, heads=4)


def test_generate_is_greedy_and_deterministic(llama):
    tok, prompt, n = ByteTokenizer(), "Shall I compare thee", 12
    ids = torch.tensor([tok(prompt)["input_ids"]])
    with torch.no_grad():
        for _ in range(n):  # an independent greedy loop
            ids = torch.cat([ids, llama(ids)[0, -1].argmax().reshape(1, 1)], dim=1)
    expect = tok.decode(ids[0, -n:].tolist())
    llama.train()
    try:
        out = generate(llama, tok, prompt, tokens=n)
        assert llama.training
    finally:
        llama.eval()
    assert isinstance(out, str) and out == expect
    assert generate(llama, tok, prompt, tokens=n) == out
    with pytest.raises(ValueError, match="tokens"):
        generate(llama, tok, prompt, tokens=0)


def test_empty_windows_are_refused():
    with pytest.raises(ValueError, match="rows is empty"):
        TokenWindows(torch.zeros(0, 5, dtype=torch.long))
