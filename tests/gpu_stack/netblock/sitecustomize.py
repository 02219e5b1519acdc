"""Loaded by Python at start when this folder is on PYTHONPATH: refuses every non-loopback
connection in that process (used for the api_v2 server the tests start in a subprocess)."""

import sys

sys.path.insert(0, __file__.rsplit("/", 2)[0])
try:
    from netguard import install
finally:
    del sys.path[0]

install()
