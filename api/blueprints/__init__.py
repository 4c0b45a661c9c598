"""One module per resource; every module exposing `blp` is registered by the app factory."""
