"""The paper's reference numbers, result tables and plots."""
