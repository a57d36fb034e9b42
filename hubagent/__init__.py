"""hubagent: the edge agent for micro-fulfilment hubs."""

__version__ = "0.1.0"
