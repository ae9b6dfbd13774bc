"""Evaluation: the 15-subset protocol of a model (`protocol`); scoring folders of predictions (`folders`)."""
