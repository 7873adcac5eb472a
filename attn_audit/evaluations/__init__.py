"""Evaluations from other papers: Abnar & Zuidema's (``az``, ``az_sweep``; reported by
``report.az``) and Wiegreffe & Pinter's (``wp``)."""
