"""The edge bridge: site.commands in, Modbus writes through the HAL, what really happened out.

Pure layers (config, safety gate, command queue, override detection, droop controller) have no
Kafka imports; the idempotency store and the outbox are local files; ``runtime`` wires them.
"""
