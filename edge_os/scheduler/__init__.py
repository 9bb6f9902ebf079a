"""The on-device scheduler: admission, eviction, KV pages and thermal throttling."""
