"""Multi-step runs (the demo) and the steps behind each command, on the Python API."""
