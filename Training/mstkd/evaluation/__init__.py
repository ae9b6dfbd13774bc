"""Evaluation: the 15-subset protocol of one model (`protocol`), and scoring folders of predictions (`folders`)."""
