"""Streams: the topic table, pure steps (``streams.steps``) and their Faust wiring."""
