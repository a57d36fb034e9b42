"""Restock windows: the hub's receiving hours, in slots that stores and makers claim."""
