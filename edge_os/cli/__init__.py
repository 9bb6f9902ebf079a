"""The `edge-os` command line: parses arguments and calls the library. No logic lives here."""
