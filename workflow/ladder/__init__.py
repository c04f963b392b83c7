"""Ladder: a reproducible laboratory for language-model scaling laws.

One module per stage (docs/design.md lists them); none of them imports snakemake.
"""

__version__ = "0.1.0"
