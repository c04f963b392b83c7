"""Ladder: a reproducible laboratory for language-model scaling laws.

One module per stage (see DESIGN in the README); none of them imports snakemake.
"""

__version__ = "0.1.0"
