"""Datasets the paper's experiments use, generated here (nothing is downloaded)."""
