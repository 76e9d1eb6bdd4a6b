"""benchmarks/text_colour_probe.py: the colour word is swapped in place, the sequences are compared on the tokens the
mask keeps, and captions whose swap changes the token count are left out of that pair."""

import importlib.util
from pathlib import Path

import torch

_spec = importlib.util.spec_from_file_location(
    "text_colour_probe", Path(__file__).parents[1] / "benchmarks" / "text_colour_probe.py")
probe = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(probe)

L = 8
# one fixed vector per word; "orange" takes two tokens, so its sequences do not line up with the others
VEC = {w: torch.randn(4, generator=torch.Generator().manual_seed(i))
       for i, w in enumerate("a red blue orange ball hits plate the".split())}


def _tokens(prompt):
    words = []
    for w in prompt.split():
        words += [w, w] if w == "orange" else [w]
    return words[:L]


def encode(prompt):
    out = torch.full((L, 4), 9.0)  # padding: not compared, so its value must not matter
    for i, w in enumerate(_tokens(prompt)):
        out[i] = VEC[w]
    return out


def mask_of(prompt):
    m = torch.zeros(L, dtype=torch.bool)
    m[:len(_tokens(prompt))] = True
    return m


def test_pairs_swap_the_colour_word_and_compare_the_kept_tokens():
    caps = ["a red ball hits the plate", "a blue ball hits a plate", "the ball hits a plate"]
    pairs = probe.pair_cosines(caps, encode, mask_of, ("red", "blue", "orange"))
    assert set(pairs) == {"blue/red"} and pairs["blue/red"]["n"] == 2  # orange: other length; no colour: skipped
    words = "a red ball hits the plate".split()
    x = torch.stack([VEC[w] for w in words]).flatten()
    y = torch.stack([VEC["blue" if w == "red" else w] for w in words]).flatten()
    want0 = float(torch.nn.functional.cosine_similarity(x, y, dim=0))
    words = "a blue ball hits a plate".split()
    x = torch.stack([VEC[w] for w in words]).flatten()
    y = torch.stack([VEC["red" if w == "blue" else w] for w in words]).flatten()
    want1 = float(torch.nn.functional.cosine_similarity(x, y, dim=0))
    assert abs(pairs["blue/red"]["mean"] - (want0 + want1) / 2) < 1e-6
    assert pairs["blue/red"]["mean"] < 0.999  # the swap changed something
