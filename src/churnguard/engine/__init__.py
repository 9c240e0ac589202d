"""Where feature and label definitions run: DuckDB embedded by default."""
