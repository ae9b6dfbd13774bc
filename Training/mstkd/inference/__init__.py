"""Inference: sliding-window prediction over whole volumes, and the Predictor built on it."""
