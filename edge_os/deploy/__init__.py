"""Putting packages on devices: keys and signatures, the device store, transports, flash and OTA."""
