"""Hugging Face folders as people have them: F16/BF16 weights, sharded checkpoints with an index,
stop tokens from generation_config.json. Read through the real importer."""

from __future__ import annotations

import json

import numpy as np
import pytest

from edge_os.convert.importers import open_source
from edge_os.errors import ModelSourceError
from tests.tiny_model import SPECIALS, stored_values, tiny_config, tiny_weights, write_hf_folder


@pytest.mark.parametrize("dtype", ["F16", "BF16"])
@pytest.mark.parametrize("shards", [1, 3])
def test_half_precision_and_sharded_weights_load_as_written(tmp_path, dtype, shards):
    folder = write_hf_folder(tmp_path / "m", seed=3, dtype=dtype, shards=shards)
    expected = {n: stored_values(a, dtype) for n, a in tiny_weights(tiny_config(), seed=3).items()}
    source = open_source(folder)
    loaded = {t.name: t.load() for t in source.tensors()}
    assert set(loaded) == set(expected) == set(source.tensor_names)
    for name, values in expected.items():
        np.testing.assert_array_equal(loaded[name], values, err_msg=name)
    assert not np.array_equal(expected["model.norm.weight"],
                              tiny_weights(tiny_config(), seed=3)["model.norm.weight"])  # it was rounded


def test_stop_tokens_come_from_generation_config_too(tmp_path):
    folder = write_hf_folder(tmp_path / "m", generation_config={"eos_token_id": [0, 1], "bos_token_id": 1})
    ids = open_source(folder).eos_token_ids
    assert ids[0] == SPECIALS.index("<|im_end|>")  # the tokenizer's eos first
    assert {0, 1} <= set(ids)


def test_a_missing_shard_is_named(tmp_path):
    folder = write_hf_folder(tmp_path / "m", shards=3)
    (folder / "model-00002-of-00003.safetensors").unlink()
    with pytest.raises(ModelSourceError, match=r"lacks 1 of the 3 shards .*model-00002-of-00003"):
        open_source(folder)


def test_an_index_that_disagrees_with_its_shards_is_refused(tmp_path):
    folder = write_hf_folder(tmp_path / "m", shards=2)
    index = json.loads((folder / "model.safetensors.index.json").read_text())
    name = next(iter(index["weight_map"]))
    index["weight_map"][name] = next(f for f in set(index["weight_map"].values()) if f != index["weight_map"][name])
    (folder / "model.safetensors.index.json").write_text(json.dumps(index))
    with pytest.raises(ModelSourceError, match="does not hold it"):
        open_source(folder)
