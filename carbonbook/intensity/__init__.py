"""Grid carbon intensity: the embedded annual data (live providers come on top of it)."""
