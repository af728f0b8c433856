"""The notebook surface: the IPython extension, its magics and the per-cell display."""
