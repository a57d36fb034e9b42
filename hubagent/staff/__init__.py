"""The staff registry: who central registered as staff, with code, badge and PIN."""
