"""The polars model: usage x intensity x PUE -> emissions, location- and market-based."""
