"""Evaluation of in-context learners: benchmarks, rollouts, learning-curve metrics and results."""
