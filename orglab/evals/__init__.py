"""Evals: FFA and the family evals, LLM and rule-based judges, the interpretability agent (design §7, §9)."""
