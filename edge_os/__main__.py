"""``python -m edge_os``: the ``edge-os`` command line."""

from edge_os.cli.main import main

raise SystemExit(main())
