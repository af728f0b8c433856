"""Example notebooks shipped with carbonbook (the quickstart that `carbonbook demo` runs)."""
