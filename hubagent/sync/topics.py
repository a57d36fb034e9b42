"""MQTT topic names: one place that spells them (see docs/mqtt-api.md)."""

from __future__ import annotations

import msgspec



class Topics(msgspec.Struct, frozen=True):
    """Topics of one hub under a prefix (default ``hubs``)."""

    prefix: str
    hub: str

    @property
    def base(self) -> str:
        """``<prefix>/<hub>``."""
        return f"{self.prefix}/{self.hub}"

    @property
    def state(self) -> str:
        """Retained hub state; the last will sets ``lost``."""
        return f"{self.base}/state"

    def event(self, kind: str) -> str:
        """Where events of ``kind`` are published."""
        return f"{self.base}/events/{kind}"

    def stock(self, sku: str) -> str:
        """Retained on-hand summary of one SKU."""
        return f"{self.base}/stock/{sku}"

    @property
    def restock(self) -> str:
        """Retained: the hub's free restock windows."""
        return f"{self.base}/restock"

    @property
    def telemetry(self) -> str:
        """Periodic metrics."""
        return f"{self.base}/telemetry"

    @property
    def commands(self) -> str:
        """Subscription filter for commands from central."""
        return f"{self.base}/cmd/#"

    @property
    def reply(self) -> str:
        """Replies when the command carried no MQTT v5 response topic."""
        return f"{self.base}/reply"

    @property
    def ack(self) -> str:
        """Central's application acknowledgement ``{"upto_seq": N}``."""
        return f"{self.base}/ack"

    def is_command(self, topic: str) -> bool:
        """Whether ``topic`` is under ``cmd`` (``cmd/#`` matches ``cmd`` itself too)."""
        cmd = f"{self.base}/cmd"
        return topic == cmd or topic.startswith(cmd + "/")

    def command_name(self, topic: str) -> str | None:
        """The command name in a ``cmd/<name>`` topic, or None."""
        head = f"{self.base}/cmd/"
        if not topic.startswith(head):
            return None
        name = topic[len(head):]
        return name if name and "/" not in name else None
