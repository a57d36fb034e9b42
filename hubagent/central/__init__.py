"""Central ops: ``hubctl`` and the consortium ingest (the ``central`` extra).

The hub core never imports this package; it speaks to hubs only through
the MQTT contract (docs/mqtt-api.md), using the core's topic helpers.
"""
