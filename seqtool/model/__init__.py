"""The networks and their training: layers and recurrent stacks over the kernels, the CRF and character
features, the tasks' models, the optimisers and the training loop, inference over batches, and model files."""
