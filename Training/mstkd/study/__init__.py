"""Controlled comparisons of training recipes: arms x seeds on identical data, evaluated and tested."""
