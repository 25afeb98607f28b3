"""The paper, reproduced: datasets, the paper's models, the run runtime, reports and the experiments.

Nothing in the layer library imports this subpackage. Imports run one way:
``cli -> repro.experiments -> repro.{models, data, runtime, report} -> coordconv (the library)``.
"""
