"""The run runtime shared by every experiment: run directory, metrics, checkpoints, resume, seeding, progress.

The runtime knows no experiment.
"""
