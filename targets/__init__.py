"""Target descriptors (one TOML file per device class), shipped inside the wheel as
``edge_os.target_descriptors`` (see setup.py) and read with ``importlib.resources``."""
