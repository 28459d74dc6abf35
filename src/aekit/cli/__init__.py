"""Command line interface (``aekit ...``)."""
