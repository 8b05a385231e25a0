"""Builders that turn third-party source data into the seed layers under `layers/`."""
