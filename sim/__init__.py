"""Simulated hardware (installed as ``hubagent.sim``).

Every role in :mod:`hubagent.ports` has a simulator here, built on the same
code paths as the real driver wherever possible (a pseudo-terminal for the
serial scanner, gpiozero's MockFactory pins for lockers), with test verbs
reached through ``hubagent sim ...``.
"""
