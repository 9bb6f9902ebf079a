"""A complete, valid manifest for tests that write package directories by hand (nothing is
loaded from them: the hashes and sizes are placeholders)."""

BASE_MANIFEST = {
    "schema_version": 1, "name": "tiny", "architecture": "llama",
    "config": {"num_hidden_layers": 2, "hidden_size": 64},
    "quantization": {"scheme": "q4f32", "scale_dtype": "float32", "decode_activations": "int16", "tensors": {}},
    "target": {"name": "host", "arch": "x86_64", "tvm_target": {"kind": "llvm"}, "cpu_features": ["avx2"]},
    "tvm_version": "0.27", "runtime_version": "0.1.0", "library": "model.so",
    "tokenizer": {"file": "tokenizer.json", "bos_token_id": None, "add_bos_token": False},
    "chat_template": None, "stop_token_ids": [2], "context_length": 512,
    "memory": {"weight_bytes": 1024, "kv_bytes_per_token": 512, "workspace_bytes": 4096},
    "params": [{"name": "w", "shape": [4, 8], "dtype": "float32", "shard": "weights/shard-00000.bin",
                "offset": 0, "nbytes": 128}],
    "files": {name: {"sha256": "0" * 64, "size": 1}
              for name in ("model.so", "tokenizer.json", "weights/shard-00000.bin")},
    "source": {"file": "tiny.gguf"}, "limits": {"prefill_chunk": 256, "max_batch": 8}, "kv_dtype": "float16",
}
