"""Evaluations from other papers: Abnar & Zuidema's (``az``, ``az_sweep``, ``az_report``), WP's."""
