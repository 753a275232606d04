"""What setup.py needs beyond setuptools and torch; imported by setup.py, never installed."""
