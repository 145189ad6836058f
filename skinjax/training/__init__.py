"""Training: the loop, the loss and step, the state, the optimiser,
checkpoints and preemption."""
