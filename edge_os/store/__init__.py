"""The local model store: named packages under ``$EDGE_OS_HOME/store``, files kept once by sha256.

``Store`` pulls, lists and removes names; ``resolve_model`` turns a ``-m``/``--models`` value
(a name or a package directory) into a package directory and marks it in use.
"""
