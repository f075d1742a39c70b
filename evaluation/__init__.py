"""Evaluation of the product pipeline against virtual light stage ground truth (never shipped in the zip)."""
