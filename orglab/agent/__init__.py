"""The interpretability agent (docs/agent.md): an LLM that names an organism's finetuning objective from its
ADL results (agent.py), the 1-5 grader of its answers (grader.py) and the summary table (table.py). It reads
diff results through `orglab.diff.results` and ground truth through `orglab.organisms.truth`; nothing in diff
or evals imports it."""
