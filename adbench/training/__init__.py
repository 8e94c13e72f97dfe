"""Training: AD and ED from history datasets, RL^2 online, all with Accelerate."""
