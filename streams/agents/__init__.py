"""Thin Faust agents: topic -> decode -> pure step (``streams.steps``) -> encode -> topic.

One module per agent, each with ``register(ctx, book)``; ``streams.app.create_app`` wires
them. Shared wiring (codec, sending, dead letters) is in ``base``; the per-worker view of
the fleet's sites in ``sitebook``.
"""
