"""The Activation Difference Lens: activation statistics, logit lens, patchscope, steering, causal test (design §6)."""
