"""Data tables shipped with carbonbook; NOTICE and the README-*.md files name their sources."""
