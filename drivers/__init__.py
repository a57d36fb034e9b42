"""Real hardware adapters (installed as ``hubagent.drivers``).

Each module implements one role of :mod:`hubagent.ports` on top of a
hardware library and translates that library's errors into
:mod:`hubagent.errors`. Only the registry imports these modules, and only
for devices that the configuration names.
"""
