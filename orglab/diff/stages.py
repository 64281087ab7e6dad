"""The ADL stages behind `orglab diff` (orglab.diff.run caches them). Each takes the shared context, its
artifact folder and the results of the stages it depends on, and returns (result, metrics, extra files).

Patchscope, relevance and steering each make a judgement call: by the offline label-free rules when `ctx.judge`
is None, else by the LLM judge (orglab.diff.judges). Each result records who made it."""

from __future__ import annotations

import random
from pathlib import Path

import torch

from orglab.diff.causal import projection_replacement
from orglab.diff.lens import top_tokens
from orglab.diff.patchscope import agreement_rule, identity_prompts, scale_sweep, unpatched_readout
from orglab.diff.relevance import (RelevanceRule, readout_keys, relevance_by_position, relevance_share,
                                   relevant_tokens, token_counts)
from orglab.diff.results import STATS_FILE
from orglab.diff.stats import NORM_RULE, ActivationStats, activation_difference_stats

# how a steering or amplification result names the offline coherence rule (orglab.diff.steering.offline_judge)
OFFLINE_COHERENCE = "{model}-model loss and distinct-token share (label-free)"  # whose loss: base or organism


def _stats(done: dict) -> ActivationStats:
    return ActivationStats.load(Path(done["stats"]["folder"]) / STATS_FILE)


def _direction(ctx, stats: ActivationStats, layer: int) -> torch.Tensor:
    """The positions 0..k-1 mean difference at a layer: the direction steering and the causal test use."""
    slot = stats.layers.index(layer)
    return stats.mean_diff[slot, :ctx.config.positions].mean(dim=0)


def stats(ctx, folder: Path, done: dict, progress: bool):
    from tqdm.auto import tqdm

    bar = tqdm(total=len(ctx.unrelated), desc="activation statistics", unit="sample", disable=not progress)
    result = activation_difference_stats(ctx.model, ctx.tokenizer, ctx.unrelated, ctx.layers,
                                         n_positions=ctx.config.collect_positions, base=ctx.base_model,
                                         batch_size=ctx.config.batch_size, on_batch=bar.update)
    bar.close()
    result.save(folder / STATS_FILE)
    metrics = {"n_samples": float(result.n_samples)}
    sinks = result.sink_positions()
    norms: dict = {}
    for slot, layer in enumerate(result.layers):
        metrics[f"L{layer}_norm_base"] = float(result.norm_base[slot])
        metrics[f"L{layer}_norm_organism"] = float(result.norm_organism[slot])
        for p in range(ctx.config.positions):
            metrics[f"L{layer}_p{p}_diff_norm"] = float(result.mean_diff[slot, p].norm())
        norms[str(layer)] = {"base": float(result.norm_base[slot]), "organism": float(result.norm_organism[slot]),
                             "sink_positions": sinks[layer],
                             "base_by_position": [round(float(v), 6) for v in result.norm_base_by_position[slot]],
                             "organism_by_position": [round(float(v), 6)
                                                      for v in result.norm_organism_by_position[slot]]}
    bos = getattr(ctx.tokenizer, "bos_token", None)
    return {"n_samples": result.n_samples, "layers": result.layers, "position0": result.position0,
            "bos_token": bos if result.position0 == "bos" else None, "norm_rule": NORM_RULE,
            "mean_norms": norms}, metrics, [STATS_FILE]


def lens(ctx, folder: Path, done: dict, progress: bool):
    s = _stats(done)
    k = ctx.config.lens_top
    out: dict = {}
    for slot, layer in enumerate(s.layers):
        def read(vectors):
            return [[(t.token, t.token_id, t.prob) for t in top_tokens(ctx.model, ctx.tokenizer, v, k)] for v in vectors]

        P = ctx.config.collect_positions
        out[str(layer)] = {
            "delta": read([s.mean_diff[slot, p] for p in range(P)]),
            "neg_delta": read([-s.mean_diff[slot, p] for p in range(P)]),
            "base_mean": read([s.mean_base[slot, p] for p in range(P)]),
            "organism_mean": read([s.mean_organism[slot, p] for p in range(P)]),
        }
    return {"layers": out}, {}, []


def patchscope(ctx, folder: Path, done: dict, progress: bool):
    s = _stats(done)
    out: dict = {}
    prompts = identity_prompts(ctx.tinyworld)
    baseline = unpatched_readout(ctx.model, ctx.tokenizer, prompts)
    for slot, layer in enumerate(s.layers):
        norm = float(s.norm_organism[slot])
        positions = []
        for p in range(ctx.config.positions):
            sweep = scale_sweep(ctx.model, ctx.tokenizer, layer, s.mean_diff[slot, p], norm,
                                scales=ctx.config.patchscope_scales, prompts=prompts, top_k=ctx.config.lens_top)
            chosen = agreement_rule(sweep, baseline)
            if ctx.judge is None:
                positions.append({"scale": chosen.scale, "tokens": chosen.tokens[:ctx.config.lens_top]})
                continue
            agreement_scale, graded = chosen.scale, _grade_scale(ctx, sweep)
            chosen = graded or chosen
            positions.append({"scale": chosen.scale, "tokens": chosen.tokens[:ctx.config.lens_top],
                              "graded": graded is not None, "agreement_scale": agreement_scale})
        out[str(layer)] = positions
    rule = "label-free prompt agreement" if ctx.judge is None else f"{ctx.judge.label}, shown each scale's tokens"
    return {"layers": out, "scale_rule": rule, "prompts": list(prompts)}, {}, []


def _grade_scale(ctx, sweep):
    """The readout the LLM grader picks from the sweep's tokens alone; None when no scale has tokens to show
    (then the agreement rule's choice stands, and the position says it was not graded)."""
    from orglab.diff.judges import SCALE_TOP, token_texts

    shown = [(r.scale, token_texts(ctx.tokenizer, [t for _, t, _ in r.tokens[:SCALE_TOP]])) for r in sweep]
    if not any(tokens for _, tokens in shown):
        return None
    scale = ctx.judge.choose_scale(shown)
    return next(r for r in sweep if r.scale == scale)


def relevance(ctx, folder: Path, done: dict, progress: bool):
    c = ctx.config
    relevant = _relevant_set(ctx)
    k, P = c.relevance_top, c.positions
    result: dict = {"n_relevant_tokens": len(relevant), "layers": {}}
    metrics: dict = {}

    def keys(tokens):  # the first k readout tokens as relevance keys (displayed, lower-cased)
        return readout_keys(ctx.tokenizer, [t[1] for t in tokens[:k]])

    for layer, lens_layer in done["lens"]["layers"].items():
        entry = {}
        for readout in ("delta", "base_mean", "organism_mean"):
            entry[f"lens_{readout}"] = relevance_by_position([keys(pos) for pos in lens_layer[readout]], relevant, k, P)
        ps = done["patchscope"]["layers"][layer]
        entry["patchscope"] = relevance_by_position([keys(pos["tokens"]) for pos in ps], relevant, k, P)
        result["layers"][layer] = entry
        for name, value in entry.items():
            metrics[f"L{layer}_relevance_{name}_max"] = value["max"]
    first = str(ctx.layers[0])
    metrics["token_relevance"] = metrics[f"L{first}_relevance_lens_delta_max"]
    metrics["token_relevance_patchscope"] = metrics[f"L{first}_relevance_patchscope_max"]
    result["rule"] = "data-grounded log-odds over token keys (displayed, lower-cased)"
    if ctx.judge is not None:
        result["llm"], llm_metrics = _llm_relevance(ctx, done)
        metrics.update(llm_metrics)
    return result, metrics, []


def _relevant_set(ctx) -> set:
    """The data-grounded relevant token keys (finetuning against unrelated data), computed once per diff."""
    c = ctx.config
    rule = RelevanceRule(count_floor=c.relevance_count_floor, min_log_odds=c.relevance_min_log_odds,
                         smoothing=c.relevance_smoothing)
    if ("relevant", rule) not in ctx.memo:
        ctx.memo["relevant", rule] = relevant_tokens(token_counts(ctx.tokenizer, ctx.finetune),
                                                     token_counts(ctx.tokenizer, ctx.unrelated), rule)
    return ctx.memo["relevant", rule]


def _llm_readout_relevance(ctx, per_position_ids, k: int, P: int) -> dict:
    """The LLM judge's relevance of a readout (token ids per position) to the truth's description: the
    data-grounded result's shape (share of the top k per position, max over positions 0..P-1) and the tokens it
    marked."""
    from orglab.diff.judges import token_texts

    texts = [token_texts(ctx.tokenizer, ids) for ids in per_position_ids]
    marked = [ctx.judge.relevant(ctx.truth["description"], tokens) for tokens in texts]
    # The verdicts are per position, so (position, index) pairs stand in for token ids: the same shares,
    # max and argmax as the data-grounded rule computes.
    keys = [[(p, i) for i in range(len(tokens))] for p, tokens in enumerate(texts)]
    relevant = {(p, i) for p, idx in enumerate(marked) for i in idx}
    return {**relevance_by_position(keys, relevant, k, P),
            "relevant_tokens": [[tokens[i] for i in idx] for tokens, idx in zip(texts, marked)]}


def _llm_relevance(ctx, done: dict):
    """The LLM judge's relevance of the lens delta and patchscope tokens, positions 0..k-1, shaped like the
    data-grounded result (share of the top k per position, max over positions)."""
    k, P = ctx.config.relevance_top, ctx.config.positions
    description = ctx.truth["description"]
    out: dict = {"judge": ctx.judge.label, "described_as": ctx.truth["described_as"], "description": description,
                 "layers": {}}
    metrics: dict = {}
    for layer, lens_layer in done["lens"]["layers"].items():
        ps = done["patchscope"]["layers"][layer]
        readouts = {"lens_delta": [[t[1] for t in pos[:k]] for pos in lens_layer["delta"][:P]],
                    "patchscope": [[t[1] for t in pos["tokens"][:k]] for pos in ps[:P]]}
        entry = {}
        for name, per_position in readouts.items():
            entry[name] = _llm_readout_relevance(ctx, per_position, k, P)
            metrics[f"L{layer}_relevance_llm_{name}_max"] = entry[name]["max"]
        out["layers"][layer] = entry
    first = str(ctx.layers[0])
    metrics["token_relevance_llm"] = metrics[f"L{first}_relevance_llm_lens_delta_max"]
    metrics["token_relevance_llm_patchscope"] = metrics[f"L{first}_relevance_llm_patchscope_max"]
    return out, metrics


def steering(ctx, folder: Path, done: dict, progress: bool):
    from orglab.diff.similarity import load_embedder, steering_similarity
    from orglab.diff.steering import completion_loss, find_strength, generate, offline_judge, steering_prompts
    from orglab.residual import add_resid_post

    s = _stats(done)
    layer = ctx.layers[0]
    direction = _direction(ctx, s, layer)
    unit = direction / direction.norm()
    norm = float(s.norm_organism[s.layers.index(layer)])
    prompts = list(steering_prompts(ctx.tinyworld)[:ctx.config.steering_prompts])
    c = ctx.config
    unsteered = generate(ctx.model, ctx.tokenizer, prompts, c.steering_samples, c.steering_max_new_tokens, seed=c.seed)
    base_model = ctx.base_model if ctx.base_model is not None else ctx.model

    def base_loss(ps, completions):
        with _as_base(ctx):
            return completion_loss(base_model, ctx.tokenizer, ps, completions)

    verdicts: list = []
    search_prompts = prompts[:c.steering_search_prompts]
    if ctx.judge is None:
        # the search's own decoding (greedy, its length) at strength 0: the distinct-token reference
        greedy = [o[0] for o in generate(ctx.model, ctx.tokenizer, search_prompts, 1, c.steering_search_max_new_tokens,
                                         temperature=0.0, seed=c.seed)]
        judge = offline_judge(base_loss, ctx.tokenizer, base_loss(prompts, [u[0] for u in unsteered]), greedy,
                              c.steering_max_extra_nats, c.steering_min_distinct_ratio, verdicts)
        judged_by = OFFLINE_COHERENCE.format(model="base")
    else:
        judge = ctx.judge.coherence_judge(verdicts)
        judged_by = f"{ctx.judge.label}, mean coherence >= {ctx.judge.coherence_threshold:g}"
    search = find_strength(ctx.model, ctx.tokenizer, layer, unit, norm, judge,
                           prompts=search_prompts, alpha_max=c.steering_alpha_max,
                           steps=c.steering_search_steps, max_new_tokens=c.steering_search_max_new_tokens, seed=c.seed)
    with add_resid_post(ctx.model, layer, unit * norm * search.alpha):
        steered = generate(ctx.model, ctx.tokenizer, prompts, c.steering_samples, c.steering_max_new_tokens, seed=c.seed)
    rng = random.Random(c.seed)
    finetune = rng.sample(ctx.finetune, min(c.similarity_finetune_samples, len(ctx.finetune)))
    flat = lambda xs: [t for x in xs for t in x]  # noqa: E731
    sim = steering_similarity(load_embedder(c.embedder), flat(steered), flat(unsteered), finetune)
    result = {"layer": layer, "alpha": search.alpha, "search": search.tried, "coherence_judge": judged_by,
              "samples": [{"prompt": p, "steered": st, "unsteered": un} for p, st, un in zip(prompts, steered, unsteered)],
              "similarity": sim}
    # the judge's numbers behind each step of the search
    result["coherence"] = [{"alpha": alpha, **v} for (alpha, _), v in zip(search.tried, verdicts)]
    metrics = {"steering_alpha": search.alpha, "steering_similarity_steered": sim["steered"],
               "steering_similarity_unsteered": sim["unsteered"], "steering_similarity_gap": sim["gap"]}
    return result, metrics, []


def causal(ctx, folder: Path, done: dict, progress: bool):
    s = _stats(done)
    layer = ctx.layers[0]
    direction = _direction(ctx, s, layer)
    rng = random.Random(ctx.config.seed)
    n = ctx.config.causal_texts
    ft = rng.sample(ctx.finetune, min(n, len(ctx.finetune)))
    un = rng.sample(ctx.unrelated, min(n, len(ctx.unrelated)))
    c = ctx.config
    on_ft, on_un = (projection_replacement(ctx.model, ctx.tokenizer, texts, layer, direction, base=ctx.base_model,
                                           n_random=c.causal_random_directions, seed=c.seed,
                                           max_length=c.causal_max_length) for texts in (ft, un))
    metrics = {"causal_delta_ce_finetune": on_ft.delta, "causal_delta_ce_unrelated": on_un.delta,
               "causal_delta_ce_finetune_random": on_ft.delta_random,
               "causal_delta_ce_unrelated_random": on_un.delta_random}
    return {"layer": layer, "finetune": on_ft.to_dict(), "unrelated": on_un.to_dict()}, metrics, []


# ---------------------------------------------------------------------------------------------- beyond ADL


def _logit_totals(ctx, stage: str, progress: bool):
    """The totals `stage` ("logitdiff" or "kl") reads. One forward pass of organism and base over the unrelated
    texts feeds both detectors this diff runs (the stage, and the other when `ctx.config.stages` names it), so
    the texts are read once: on a real vocabulary the unembedding and the log-softmax over 262,144 tokens are
    most of each stage's time. The pass reads `collect_positions` positions in batches cut from both stages'
    samples, whichever stages it feeds, so a stage's result does not depend on whether the other ran beside it
    (and each hashes both sample counts: run.LOGIT_PASS_SETTINGS); each stage folds in its own first samples
    only. Kept in ctx.memo for the second stage."""
    if stage in ctx.memo.get("logit_totals", {}):
        return ctx.memo["logit_totals"][stage]
    from tqdm.auto import tqdm

    from orglab.diff.kl import KLTotals
    from orglab.diff.logitdiff import LogitDiffTotals, logprob_difference
    from orglab.diff.nexttoken import paired_logprobs

    c = ctx.config
    counts = {"logitdiff": c.logitdiff_samples, "kl": c.kl_samples}
    samples = {s: n for s, n in counts.items() if s == stage or s in c.stages}
    # The batches are cut from the texts of both counts, whichever stages run, so a stage's batches (the last
    # one's padding included) never depend on what ran beside it; the pass stops after the last batch it needs.
    texts = ctx.unrelated[:max(counts.values())]
    needed = min(len(texts), max(samples.values()))
    P, vocab = c.positions, ctx.model.get_output_embeddings().weight.shape[0]
    totals = {s: LogitDiffTotals.empty(P, vocab, c.logitdiff_top_k) if s == "logitdiff"
              else KLTotals.empty(c.collect_positions) for s in samples}
    label = " and ".join({"logitdiff": "logit-difference mining", "kl": "KL divergence"}[s] for s in samples)
    bar = tqdm(total=needed, desc=label, unit="sample", disable=not progress)
    seen = 0
    for lp_org, lp_base, mask in paired_logprobs(ctx.model, ctx.tokenizer, texts, c.collect_positions,
                                                 base=ctx.base_model, batch_size=c.batch_size):
        for s, t in totals.items():
            r = max(0, min(len(mask), samples[s] - seen))  # this batch's rows within the stage's own samples
            if r and s == "logitdiff":
                t.add(logprob_difference(lp_org[:r, :P], lp_base[:r, :P]), mask[:r, :P])
            elif r:
                t.add(lp_org[:r], lp_base[:r], mask[:r])
        seen += len(mask)
        bar.update(min(seen, needed) - bar.n)
        if seen >= needed:
            break
    bar.close()
    ctx.memo["logit_totals"] = totals
    return totals[stage]


def logitdiff(ctx, folder: Path, done: dict, progress: bool):
    """Logit-difference mining (orglab.diff.logitdiff): the tokens the organism makes likelier than its base at
    positions 0..k-1 of unrelated text, and their relevance as for the lens."""
    from orglab.diff.logitdiff import rank_by_frequency, rank_by_mean_diff
    from orglab.tokens import display_token

    c = ctx.config
    P, K = c.positions, c.logitdiff_top_k
    totals, n_texts = _logit_totals(ctx, "logitdiff", progress), min(c.logitdiff_samples, len(ctx.unrelated))
    frequency, mean_diff = totals.frequency(), totals.mean_diff()

    def readout(ids, freq, mean):  # [token as displayed, id, top-K frequency, mean difference in nats]
        return [[display_token(ctx.tokenizer, i), i, round(float(freq[i]), 6), round(float(mean[i]), 6)] for i in ids]

    positions = [{"n": int(totals.n[p]),
                  "by_frequency": readout(rank_by_frequency(frequency[p], mean_diff[p], K), frequency[p], mean_diff[p]),
                  "by_mean_diff": readout(rank_by_mean_diff(mean_diff[p], K), frequency[p], mean_diff[p])}
                 for p in range(P)]
    pooled_freq, pooled_mean = totals.pooled()
    pooled = {"by_frequency": readout(rank_by_frequency(pooled_freq, pooled_mean, K), pooled_freq, pooled_mean),
              "by_mean_diff": readout(rank_by_mean_diff(pooled_mean, K), pooled_freq, pooled_mean)}

    relevant, k = _relevant_set(ctx), c.relevance_top

    def ids_of(entries):
        return [e[1] for e in entries[:k]]

    relevance = {ranking: relevance_by_position([readout_keys(ctx.tokenizer, ids_of(pos[ranking])) for pos in positions],
                                                relevant, k, P)
                 for ranking in ("by_frequency", "by_mean_diff")}
    relevance["pooled_by_frequency"] = relevance_share(readout_keys(ctx.tokenizer, ids_of(pooled["by_frequency"])),
                                                       relevant, k)
    metrics = {"logitdiff_relevance": relevance["by_frequency"]["max"],
               "logitdiff_relevance_mean_diff": relevance["by_mean_diff"]["max"],
               "logitdiff_relevance_pooled": relevance["pooled_by_frequency"],
               "logitdiff_max_mean_diff": float(mean_diff[totals.n > 0].max()) if bool((totals.n > 0).any()) else 0.0}
    result = {"n_samples": n_texts, "top_k": K, "positions": positions, "pooled": pooled, "relevance": relevance,
              "rule": "data-grounded log-odds over token keys (displayed, lower-cased)"}
    if ctx.judge is not None:
        llm = _llm_readout_relevance(ctx, [ids_of(pos["by_frequency"]) for pos in positions], k, P)
        result["llm"] = {"judge": ctx.judge.label, "described_as": ctx.truth["described_as"], "by_frequency": llm}
        metrics["logitdiff_relevance_llm"] = llm["max"]
    return result, metrics, []


def kl(ctx, folder: Path, done: dict, progress: bool):
    """Per-position KL(organism || base) of next-token distributions on unrelated text (orglab.diff.kl)."""
    from orglab.diff.kl import kl_summary

    c = ctx.config
    totals = _logit_totals(ctx, "kl", progress)
    by_position = totals.by_position()
    metrics = kl_summary(by_position, c.positions)
    return {"n_samples": min(c.kl_samples, len(ctx.unrelated)), "early_positions": c.positions,
            "by_position": by_position, "samples_by_position": [int(n) for n in totals.n], **metrics}, metrics, []


def amplify(ctx, folder: Path, done: dict, progress: bool):
    """Amplified decoding (orglab.diff.amplify): text sampled with logits l_ft + a*(l_ft - l_base) from the steering
    prompts and an empty context, at the largest coherent a of the grid, against the organism's own text."""
    from orglab.diff.amplify import choose_scale, contrastive_adjuster, over_represented, padded_share
    from orglab.diff.similarity import load_embedder, steering_similarity
    from orglab.diff.steering import completion_loss, offline_judge, steering_prompts
    from orglab.generation import bos_prefix, chat_prompts, generate

    c = ctx.config
    users = list(steering_prompts(ctx.tinyworld)[:c.steering_prompts])
    rendered = chat_prompts(ctx.tokenizer, users)
    # an empty context: the BOS token alone (the EOS where the tokenizer has no BOS, as Qwen starts documents)
    empty = bos_prefix(ctx.tokenizer) or ctx.tokenizer.bos_token or ctx.tokenizer.eos_token

    def decode(scale: float, prompts, n: int, max_new_tokens: int, temperature: float):
        adjust = None if scale == 0 else contrastive_adjuster(ctx.model, scale, base=ctx.base_model)
        return generate(ctx.model, ctx.tokenizer, prompts, n=n, temperature=temperature, max_new_tokens=max_new_tokens,
                        seed=c.seed, adjust_logits=adjust)

    measured_temperature = 1.0  # the measured texts are sampled

    def texts_at(scale: float) -> tuple[list[list[str]], list[str]]:  # (answers per prompt, empty-context texts)
        answers = decode(scale, rendered, c.steering_samples, c.steering_max_new_tokens, measured_temperature)
        free = decode(scale, [empty], c.amplify_empty_context_samples, c.steering_max_new_tokens,
                      measured_temperature)[0] if c.amplify_empty_context_samples else []
        return answers, free

    plain_answers, plain_free = texts_at(0.0)
    base_model = ctx.base_model if ctx.base_model is not None else ctx.model

    def base_loss(ps, completions):
        with _as_base(ctx):
            return completion_loss(base_model, ctx.tokenizer, ps, completions)

    search = users[:c.steering_search_prompts]
    search_rendered = rendered[:c.steering_search_prompts]

    # The search judges answers decoded as the measured texts are (sampled) by default: greedy answers can stay
    # coherent at a scale whose samples are junk, since amplification lifts the tail of the distribution.
    search_temperature = measured_temperature if c.amplify_search_decoding == "sampled" else 0.0

    def search_answers(scale: float) -> list[str]:  # the search's decoding, one answer per search prompt
        return [o[0] for o in decode(scale, search_rendered, 1, c.steering_search_max_new_tokens, search_temperature)]

    def organism_loss(ps, completions):
        return completion_loss(ctx.model, ctx.tokenizer, ps, completions)

    verdicts: list = []
    if ctx.judge is None:  # the steering search's label-free rule, against the organism's own answers
        loss = base_loss if c.amplify_loss_model == "base" else organism_loss
        judge = offline_judge(loss, ctx.tokenizer, loss(users, [a[0] for a in plain_answers]),
                              search_answers(0.0), c.steering_max_extra_nats, c.steering_min_distinct_ratio, verdicts)
        judged_by = OFFLINE_COHERENCE.format(model=c.amplify_loss_model)
    else:
        judge = ctx.judge.coherence_judge(verdicts)
        judged_by = f"{ctx.judge.label}, mean coherence >= {ctx.judge.coherence_threshold:g}"

    def coherent(scale: float) -> bool:
        return judge(search, search_answers(scale))

    scale, tried = choose_scale(c.amplify_scales, coherent)
    amp_answers, amp_free = texts_at(scale) if scale else (plain_answers, plain_free)
    flat = lambda xs: [t for x in xs for t in x]  # noqa: E731
    amplified, unamplified = flat(amp_answers) + amp_free, flat(plain_answers) + plain_free
    rng = random.Random(c.seed)
    finetune = rng.sample(ctx.finetune, min(c.similarity_finetune_samples, len(ctx.finetune)))
    sim = steering_similarity(load_embedder(c.embedder), amplified, unamplified, finetune)
    k = c.relevance_top
    top = over_represented(token_counts(ctx.tokenizer, amplified), token_counts(ctx.tokenizer, unamplified), k,
                           c.relevance_smoothing)
    relevant = _relevant_set(ctx)
    share = padded_share(top, relevant, k)
    result = {"scale": scale, "search": tried, "coherence_judge": judged_by, "search_decoding": c.amplify_search_decoding,
              "samples": [{"prompt": p, "amplified": a, "unamplified": u}
                          for p, a, u in zip(users, amp_answers, plain_answers)],
              "empty_context": {"amplified": amp_free, "unamplified": plain_free},
              "similarity": {"amplified": sim["steered"], "unamplified": sim["unsteered"], "gap": sim["gap"]},
              "over_represented": [{"token": t, "relevant": t in relevant} for t in top]}
    result["coherence"] = [{"scale": s, **v} for (s, _), v in zip(tried, verdicts)]
    metrics = {"amplify_scale": scale, "amplify_similarity_amplified": sim["steered"],
               "amplify_similarity_unamplified": sim["unsteered"], "amplify_similarity_gap": sim["gap"],
               "amplify_relevance": share}
    return result, metrics, []


def _as_base(ctx):
    """Adapter off while the block runs, when the organism is a LoRA adapter (a new context each time)."""
    import contextlib

    if ctx.base_model is not None:
        return contextlib.nullcontext()
    return ctx.model.disable_adapter()
