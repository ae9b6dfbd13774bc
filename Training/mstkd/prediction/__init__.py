"""A network's label map of a whole normalised volume: sliding windows and the label rule.

Shared by validation during training, the evaluation protocol and the Predictor, so that all
three turn scores into labels the same way.
"""
