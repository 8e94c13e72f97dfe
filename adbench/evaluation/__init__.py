"""Evaluation of in-context learners: learning-curve metrics, aggregates and leaderboards."""
