"""Perplexity of the int4 package stays within 3% of an f32 package of the same model.

Also measures a symmetric q4f32 requantization (a second rounding of the GGUF's Q4_1 blocks) so
the cost of each layout is known; the figures are printed (run with -s to see them).
"""

from __future__ import annotations

from pathlib import Path

import pytest

from edge_os.default_model import default_package
from edge_os.runtime.engine import Engine
from edge_os.runtime.perplexity import perplexity

pytestmark = pytest.mark.slow
TEXT = (Path(__file__).parent.parent / "data" / "declaration_of_independence.txt").read_text()


def ppl(quant: str) -> float:
    engine = Engine.load(default_package(quant=quant, progress=False), context_tokens=512)
    return perplexity(engine, TEXT, window=512).perplexity


def test_int4_package_is_within_3_percent_of_f32():
    results = {quant: ppl(quant) for quant in ("auto", "f32", "q4f32")}
    print("perplexity:", {k: round(v, 3) for k, v in results.items()})
    assert results["auto"] <= results["f32"] * 1.03
    assert results["q4f32"] > results["auto"] * 0.97  # a second rounding should not look better
