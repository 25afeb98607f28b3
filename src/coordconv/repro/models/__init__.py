"""The paper's networks. Models know nothing of training."""
