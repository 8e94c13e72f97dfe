"""The last stage: leaderboards of evaluation results, their verification and the web site."""
