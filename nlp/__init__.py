"""Japanese text for the desk: normalisation, tokens, sentiment and keywords.

Imports nothing heavy: torch and transformers load only when a model is asked for.
"""
