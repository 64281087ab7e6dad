"""Evals: FFA and the family evals, LLM and rule-based judges, the interpretability agent (SPEC §7, §9)."""
