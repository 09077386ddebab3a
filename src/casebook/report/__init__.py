"""Reporting, one family per module: figures, metrics (bootstrap CIs), results_file, readme_table, records, timing."""
