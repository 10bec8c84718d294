"""Pure stream steps: no faust, no kafka imports (the agents in ``streams.agents`` wire them).

Each step is ``(state, event, now) -> (new_state, output, reason)`` or a small aggregator class
(``initialize/agg/result``). Records are frozen dataclasses named and shaped like the Avro
schemas under ``schemas/`` with ``from_record(dict)`` / ``to_record()``; instants are int
microseconds since the epoch (UTC).
"""
