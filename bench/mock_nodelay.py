#!/usr/bin/env python3
"""mock_nodelay.py - tests/lib/mock_clarity.py, unchanged, with TCP_NODELAY on its sockets.

    mock_nodelay.py [mock_clarity.py arguments...]

The stock mock answers a keep-alive request in two writes (headers, then body); with Nagle's
algorithm on, the second write waits for the client's delayed ACK, so every request after the
first costs ~40 ms whatever the client does (measured: ~22 requests/s for sagebridge deliver and
for a bare http.client alike).  That would make "deliver operations per second" a measure of
the kernel's delayed-ACK timer.  This wrapper imports the mock and sets the standard
StreamRequestHandler.disable_nagle_algorithm switch before calling its main(); nothing else
differs.  bench/run.sh measures deliver against both (the stock one with fewer operations).
"""
import importlib.util
import os
import sys

HERE = os.path.dirname(os.path.abspath(__file__))
spec = importlib.util.spec_from_file_location(
    "mock_clarity", os.path.join(HERE, "..", "tests", "lib", "mock_clarity.py"))
mock = importlib.util.module_from_spec(spec)
spec.loader.exec_module(mock)
mock.Handler.disable_nagle_algorithm = True

if __name__ == "__main__":
    sys.exit(mock.main())
