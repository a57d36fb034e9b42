"""The consortium's numbers, computed on the hub from its own ledger.

Daily rollups (per SKU and per hub, by the hub's local day) are updated in
the same transaction as each movement or locker event, so a KPI query reads
a few rows per day of its window whatever the size of the ledger; a rebuild
from the ledger gives the same rows. The figures and their formulas are
defined in ``docs/kpi.md``.
"""
