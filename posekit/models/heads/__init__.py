"""Heads: the layers after a trunk that make a codec's outputs (``heads.paf``: PAF stages)."""
