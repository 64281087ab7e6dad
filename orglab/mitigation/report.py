"""`orglab report`: a sweep as one static HTML page with PNG plots, readable from disk with no server.

The page holds the paper's ablation table in miniature (every detector and the property per mitigation cell, the
null controls beside them), one row per detector per cell against the controls' band, a plot of each detector and
one of the property against the ratio, the Pareto plot of detectability against the property over every cell with
the table of its non-dominated cells (orglab.mitigation.pareto), and per cell the evidence behind the numbers: top logit-lens, patchscope and
logit-difference tokens per position, steered vs unsteered and amplified vs unamplified samples, and the KL per
position, read from the cell's diff runs in the registry. Everything is inline (CSS, one small script) except the PNGs, which sit beside index.html and
are referenced by relative paths, so the folder can be copied or zipped as it is.
"""

from __future__ import annotations

import html
import json
from dataclasses import dataclass, field
from pathlib import Path

from orglab.errors import OrglabError
from orglab.mitigation.check import DETECTORS, Detector
from orglab.mitigation.grid import cell_of
from orglab.mitigation.pareto import cell_points, sweep_front
from orglab.mitigation.plots import (BASE_COLOUR, CONTROL_COLOUR, DPI, PANEL_INCHES, ParetoPoint, Point, Reference,
                                     mitigation_style, mix_label, panel_grid, plot_detectability, plot_pareto,
                                     plot_property)
from orglab.registry import Registry

DETECTABILITY_PNG = "detectability.png"
PROPERTY_PNG = "property.png"
PARETO_PNG = "pareto.png"
PLOT_FILES = (DETECTABILITY_PNG, PROPERTY_PNG, PARETO_PNG)

LENS_TOKENS = 10        # top tokens of +delta and of patchscope shown per position
NEG_LENS_TOKENS = 5     # -delta: the baseline side, fewer suffice
STEERING_PROMPTS = 3    # prompts shown per cell (first sample of each)
EMPTY_CONTEXT_TEXTS = 2  # amplified texts from an empty context shown per cell


def sweep_detectors(sweep: dict) -> list[Detector]:
    """The detectors the sweep judged with (a sweep stored before the battery: ADL's two)."""
    names = sweep.get("detectors") or {"lens": None, "steering": None}
    return [d for d in DETECTORS if d.name in names]


def write_report(sweep: dict, out_dir: Path, registry: Registry | None = None) -> Path:
    """Write index.html, its PNG plots and a copy of the sweep's numbers (sweep.json) into out_dir; returns the
    path of index.html."""
    out_dir = Path(out_dir)
    if out_dir.exists() and not out_dir.is_dir():
        raise OrglabError(f"--out {out_dir} is a file; pass a folder (it is created if missing).")
    try:
        out_dir.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise OrglabError(f"Cannot create the report folder {out_dir} ({exc.strerror}); pass another --out.") from None
    reg = registry or Registry()
    try:
        details = {_cell_key(c): cell_details(reg, c.get("diff_runs") or {})
                   for c in [*sweep["cells"], *sweep.get("controls", [])]}
    finally:
        if registry is None:
            reg.close()
    _write_plots(sweep, out_dir)
    index = out_dir / "index.html"
    index.write_text(render_page(sweep, details), encoding="utf-8")
    (out_dir / "sweep.json").write_text(json.dumps(sweep, indent=1, sort_keys=True, default=str))
    return index


# --- the cells' ADL evidence, from their diff runs --------------------------------------------------------------

@dataclass
class CellDetails:
    """What one cell's diff runs hold for the page, and why a part is absent."""
    lens: dict | None = None          # layer -> {"delta": [[token, id, prob], ...] per position, "neg_delta": ...}
    patchscope: dict | None = None    # layer -> [{"scale", "tokens"} per position]
    relevance: dict | None = None     # layer -> {"lens_delta": {"per_position": [...]}, ...}
    steering: dict | None = None      # {"alpha", "layer", "samples": [{"prompt", "steered", "unsteered"}]}
    logitdiff: dict | None = None     # {"positions": [{"by_frequency": [[token, id, freq, mean], ...]}], ...}
    kl: dict | None = None            # {"by_position": [...], ...}
    amplify: dict | None = None       # {"scale", "samples": [{"prompt", "amplified", "unamplified"}], ...}
    not_run: list[str] = field(default_factory=list)    # stages the sweep skipped
    problems: list[str] = field(default_factory=list)   # stages whose stored result could not be read


def cell_details(reg: Registry, diff_runs: dict) -> CellDetails:
    details = CellDetails()
    for stage in ("lens", "patchscope", "relevance", "steering", "logitdiff", "kl", "amplify"):
        run_id = diff_runs.get(stage)
        if run_id is None:
            details.not_run.append(stage)
            continue
        result, problem = _stage_result(reg, run_id)
        if problem:
            details.problems.append(f"{stage}: {problem}")
            continue
        layered = stage in ("lens", "patchscope", "relevance")
        setattr(details, stage, result.get("layers") if layered else result)
    return details


def _stage_result(reg: Registry, run_id: int) -> tuple[dict | None, str | None]:
    run = reg.get_run(int(run_id))
    if run is None:
        return None, f"run {run_id} is no longer in the registry"
    paths = [Path(a["path"]) for a in reg.get_artifacts(run.id) if Path(a["path"]).name == "result.json"]
    if not paths or not paths[0].is_file():
        return None, f"the result file of run {run_id} is missing"
    try:
        return json.loads(paths[0].read_text()), None
    except (OSError, json.JSONDecodeError) as exc:
        return None, f"the result file of run {run_id} cannot be read ({exc})"


def _cell_key(cell: dict) -> str:
    return cell["organism"]


# --- plots --------------------------------------------------------------------------------------------------------

def _points(cells: list[dict], value_of) -> list[Point]:
    out = []
    for c in cells:
        value, ci = value_of(c)
        out.append(Point(mix=c.get("mix", 0.0), seed=c.get("seed", 0), value=value, ci95=ci,
                         series=cell_of(c).penalties))
    return out


def _diff_value(key: str):
    return lambda c: ((c.get("diff") or {}).get(key), None)


def _property_value(c: dict):
    prop = c.get("property") or {}
    ci = prop.get("ci95")
    return prop.get("value"), (tuple(ci) if ci and None not in ci else None)


def _reference(label: str, entries: list[dict], value_of, colour: str) -> Reference:
    values = tuple(v for v, _ in map(value_of, entries) if v is not None)
    return Reference(label=label, values=values, colour=colour)


def _write_plots(sweep: dict, out_dir: Path) -> None:
    mixes = sweep["mixes"]
    cells, controls = sweep["cells"], sweep.get("controls", [])
    panels = [(d.label, _points(cells, _diff_value(d.metric)),
               _reference("null controls", controls, _diff_value(d.metric), CONTROL_COLOUR))
              for d in sweep_detectors(sweep)]
    plot_detectability(mixes, panels, out_dir / DETECTABILITY_PNG,
                       title=f"Detectability of {sweep['family']} {sweep['target']} on {sweep['base']}")
    label = _property_label(sweep)
    refs = [_reference("null control", controls, _property_value, CONTROL_COLOUR)]
    if sweep.get("base_property"):
        refs.append(_reference(f"base {sweep['base']}", [{"property": sweep["base_property"]}], _property_value,
                               BASE_COLOUR))
    plot_property(mixes, _points(cells, _property_value), refs, out_dir / PROPERTY_PNG, label=label,
                  title=f"{label} of {sweep['family']} {sweep['target']} against the mixing ratio")
    front = {(p["organism"], p["seed"]) for p in _front(sweep)}
    points = [ParetoPoint(p["label"], p["mitigation"], p["detectability"], p["property"],
                          (p["organism"], p["seed"]) in front)
              for p in cell_points(cells) if p["detectability"] is not None and p["property"] is not None]
    plot_pareto(points, refs[0], refs[1] if len(refs) > 1 else None, out_dir / PARETO_PNG, label=label,
                higher_is_stronger=_higher_is_stronger(sweep),
                title=f"{sweep['family']} {sweep['target']}: detectability against {label}, every cell")


def _higher_is_stronger(sweep: dict) -> bool:
    return (sweep.get("property") or {}).get("higher_is_stronger", True)


def _front(sweep: dict) -> list[dict]:
    """The sweep's non-dominated cells (computed here for a sweep stored before it held them)."""
    front = sweep.get("pareto")
    return front if front is not None else sweep_front(sweep["cells"], _higher_is_stronger(sweep))


def _property_label(sweep: dict) -> str:
    prop = sweep.get("property") or {}
    return prop.get("label") or prop.get("metric") or "property"


# --- HTML -------------------------------------------------------------------------------------------------------

CSS = """
body { font-family: system-ui, -apple-system, "Segoe UI", Roboto, sans-serif; margin: 0; color: #1d1d1f;
       background: #fafafa; line-height: 1.45; }
main { max-width: 1180px; margin: 0 auto; padding: 24px 28px 60px; }
h1 { font-size: 1.6em; margin-bottom: 0.2em; }
h2 { border-bottom: 2px solid #dde3ea; padding-bottom: 4px; margin-top: 2em; }
h3 { margin-bottom: 0.3em; }
.meta { color: #555; margin-top: 0; }
.note { color: #555; font-size: 0.92em; max-width: 900px; }
table { border-collapse: collapse; margin: 8px 0 16px; background: #fff; font-size: 0.92em; }
th, td { border: 1px solid #d5dbe1; padding: 5px 8px; vertical-align: top; text-align: left; }
th { background: #eef2f6; }
td.num { text-align: right; font-variant-numeric: tabular-nums; white-space: nowrap; }
tr.control td { background: #f3f3f3; }
tr.base td { background: #fbf1f0; }
.tok { display: inline-block; font-family: ui-monospace, Menlo, Consolas, monospace; font-size: 0.88em;
       background: #e8eef6; border-radius: 3px; padding: 0 4px; margin: 1px 2px; white-space: pre; }
.neg .tok { background: #f1eee8; }
.ps .tok { background: #e9f4ea; }
.pass { color: #1e7b34; font-weight: 600; }
.fail { color: #b3261e; font-weight: 600; }
.missing { color: #8a6d00; }
figure { margin: 12px 0; }
figure img { max-width: 100%; height: auto; border: 1px solid #d5dbe1; background: #fff; }
figcaption { color: #555; font-size: 0.9em; max-width: 900px; }
.sample { white-space: pre-wrap; font-family: ui-monospace, Menlo, Consolas, monospace; font-size: 0.85em; }
section.cell table { width: 100%; }
div.wide { overflow-x: auto; }
div.wide th { font-size: 0.9em; }
section.cell { background: #fff; border: 1px solid #dde3ea; border-radius: 6px; padding: 4px 16px 10px;
               margin: 16px 0; }
"""

# Counts images that failed to load (the browser test reads data-images-ok; console.error names each broken one).
IMAGE_CHECK_JS = """
window.addEventListener("load", function () {
  var images = Array.prototype.slice.call(document.images);
  var loaded = 0;
  images.forEach(function (img) {
    if (img.complete && img.naturalWidth > 0) { loaded += 1; }
    else { console.error("orglab report: image failed to load: " + img.getAttribute("src")); }
  });
  document.body.dataset.imagesOk = loaded + "/" + images.length;
});
"""


def _e(value) -> str:
    return html.escape(str(value), quote=True)


def _num(value, signed: bool = False) -> str:
    if value is None:
        return "&ndash;"
    return f"{value:+.3f}" if signed else f"{value:.3f}"


def _spread(values: list[float | None], signed: bool = False) -> str:
    """Mean over seeds, with the seeds' min-max when there are several."""
    values = [v for v in values if v is not None]
    if not values:
        return "&ndash;"
    mean = _num(sum(values) / len(values), signed)
    if len(values) == 1:
        return mean
    return f"{mean} <small>({_num(min(values), signed)}&ndash;{_num(max(values), signed)})</small>"


def _with_ci(prop: dict | None) -> str:
    if not prop or prop.get("value") is None:
        return "&ndash;"
    ci = prop.get("ci95")
    if ci and None not in ci:
        return f"{_num(prop['value'])} <small>[{_num(ci[0])}&ndash;{_num(ci[1])}]</small>"
    return _num(prop["value"])


def _verdict(cells: list[dict]) -> str:
    checked = [c["check"] for c in cells if c.get("check")]
    if not checked:
        return "&ndash;"
    passed = sum(bool(c.get("passed")) for c in checked)
    if len(checked) == 1:
        return '<span class="pass">passes</span>' if passed else '<span class="fail">fails</span>'
    cls = "pass" if passed == len(checked) else "fail"
    return f'<span class="{cls}">{passed}/{len(checked)} pass</span>'


def _token(text: str) -> str:
    """One token as a chip, as a person reads it (`orglab.tokens.display_token`: no byte-level or sentencepiece
    markers, newlines and tabs escaped, a token of spaces only shown as ␣)."""
    from orglab.tokens import display_token

    return f'<span class="tok">{_e(display_token(None, text))}</span>'


def _tokens(entries: list, n: int) -> str:
    return "".join(_token(t[0]) for t in entries[:n])


def _summary_table(sweep: dict) -> str:
    label = _property_label(sweep)
    detectors = sweep_detectors(sweep)
    head = ("<tr><th>mitigation</th><th>seeds</th>"
            + "".join(f"<th>{_e(d.label)}<br><small>{_e(d.name)}</small></th>" for d in detectors)
            + f"<th>{_e(label)}</th><th>check</th><th>flagged by</th></tr>")
    rows = []

    def row(cls: str, name: str, entries: list[dict], verdict: str, seen: str) -> str:
        diff = [e.get("diff") or {} for e in entries]
        props = [(e.get("property") or {}).get("value") for e in entries]
        values = "".join(f'<td class="num">{_spread([x.get(d.metric) for x in diff], d.metric.endswith("_gap"))}</td>'
                         for d in detectors)
        return (f'<tr class="{cls}"><td>{name}</td><td class="num">{len(entries)}</td>{values}'
                f'<td class="num">{_spread(props) if len(entries) > 1 else _with_ci(entries[0].get("property"))}</td>'
                f"<td>{verdict}</td><td>{seen}</td></tr>")

    def seen_by(entries: list[dict]) -> str:
        names = {f["detector"] for e in entries for f in (e.get("check") or {}).get("flagged", [])}
        return _e(", ".join(d.name for d in detectors if d.name in names)) or "none"

    for setting in sorted({cell_of(c) for c in sweep["cells"]}):
        cells = [c for c in sweep["cells"] if cell_of(c) == setting]
        rows.append(row("", _e(setting.label), cells, _verdict(cells), seen_by(cells)))
    controls = sweep.get("controls", [])
    if controls:
        rows.append(row("control", "null controls", controls, "&ndash;", seen_by(controls)))
    if sweep.get("base_property"):
        blanks = '<td class="num">&ndash;</td>' * (len(detectors) + 1)
        rows.append(f'<tr class="base"><td>base {_e(sweep["base"])}</td>{blanks}'
                    f'<td class="num">{_with_ci(sweep["base_property"])}</td><td>&ndash;</td><td></td></tr>')
    return f'<div class="wide"><table>{head}{"".join(rows)}</table></div>'


def _detector_table(sweep: dict) -> str:
    """One row per detector per cell (and per null control, judged against the other controls)."""
    head = ("<tr><th>cell</th><th>detector</th><th>value</th><th>control band<br><small>min&ndash;max</small></th>"
            "<th>margin</th><th>limit</th><th>flags</th></tr>")
    rows = []
    entries = sorted(sweep["cells"], key=_order)
    for kind, group in (("", entries), ("control", sweep.get("controls", []))):
        for entry in group:
            checked = (entry.get("check") or {}).get("rows", [])
            name = (f"null control <code>{_e(entry['organism'])}</code>" if kind else
                    f"{_e(cell_of(entry).label)}, seed {entry.get('seed', 0)}")
            for r in (r for r in checked if "detector" in r):
                band = ("&ndash;" if r.get("control") is None else _num(r["control"]) if r.get("control_min") in
                        (None, r["control"]) else f"{_num(r['control_min'])}&ndash;{_num(r['control'])}")
                flag = ('<span class="pass">no</span>' if r["ok"] else '<span class="fail">yes' +
                        (f", by {r['by']:.3f}" if r.get("by") is not None else " (not measured)") + "</span>")
                rows.append(f'<tr class="{kind}"><td>{name}</td><td>{_e(r["detector"])}</td>'
                            f'<td class="num">{_num(r["value"])}</td><td class="num">{band}</td>'
                            f'<td class="num">{r.get("margin", 0):g}</td><td class="num">{_num(r["limit"])}</td>'
                            f"<td>{flag}</td></tr>")
    return f"<table>{head}{''.join(rows)}</table>" if rows else ""


def _order(cell: dict) -> tuple:
    return cell_of(cell), cell.get("seed", 0)


def _pareto_table(sweep: dict) -> str:
    """The non-dominated cells, by rising detectability."""
    label = _property_label(sweep)
    head = ("<tr><th>cell</th><th>seed</th><th>mitigation</th><th>detectability<br><small>worst detector, margins"
            f"</small></th><th>worst detector</th><th>{_e(label)}</th><th>check</th><th>organism</th></tr>")
    rows = []
    for p in _front(sweep):
        marker, colour = mitigation_style(p["mitigation"])
        verdict = '<span class="pass">passes</span>' if p["passed"] else '<span class="fail">fails</span>'
        rows.append(f'<tr><td>{_e(p["label"])}</td><td class="num">{p["seed"]}</td>'
                    f'<td><span style="color:{colour}">{_e(marker)}</span> {_e(p["mitigation"])}</td>'
                    f'<td class="num">{_num(p["detectability"])}</td><td>{_e(p["detector"] or "")}</td>'
                    f'<td class="num">{_num(p["property"])}</td><td>{verdict}</td>'
                    f'<td><code>{_e(p["organism"] or "")}</code></td></tr>')
    if not rows:
        return '<p class="missing">No cell has both a detectability and a property value.</p>'
    return f"<table>{head}{''.join(rows)}</table>"


def _stops(sweep: dict) -> str:
    """Where each detector stops seeing the organism as mixing grows: the sweep's answer to the paper's open
    question for this world."""
    items = []
    for name, stop in (sweep.get("detectors") or {}).items():
        if stop["stops_at"] is None:
            items.append(f"<li><b>{_e(name)}</b> still flags the largest ratio, "
                         f"{_e(mix_label(max(sweep['mixes'])))}</li>")
        elif not stop["flags"]:
            items.append(f"<li><b>{_e(name)}</b> flags no ratio</li>")
        else:
            items.append(f"<li><b>{_e(name)}</b> flags up to {_e(mix_label(max(stop['flags'])))} and no longer from "
                         f"{_e(mix_label(stop['stops_at']))}</li>")
    return f"<ul>{''.join(items)}</ul>" if items else ""


def _lens_table(d: CellDetails) -> str:
    if d.lens is None:
        return ""
    parts = []
    for layer, readouts in d.lens.items():
        ps = (d.patchscope or {}).get(layer)
        rel = ((d.relevance or {}).get(layer) or {}).get("lens_delta", {}).get("per_position")
        n_pos = len(ps) if ps else len(readouts["delta"])  # the summarised positions 0..k-1 when known
        head = ("<tr><th>pos</th><th>relevance<br><small>lens</small></th><th>logit lens of &delta; (top tokens)</th>"
                "<th>logit lens of &minus;&delta;</th>" + ("<th>patchscope (scale)</th>" if ps else "") + "</tr>")
        rows = []
        for p in range(min(n_pos, len(readouts["delta"]))):
            cells = [f'<td class="num">{p}</td>',
                     f'<td class="num">{_num(rel[p]) if rel and p < len(rel) else "&ndash;"}</td>',
                     f"<td>{_tokens(readouts['delta'][p], LENS_TOKENS)}</td>",
                     f'<td class="neg">{_tokens(readouts["neg_delta"][p], NEG_LENS_TOKENS)}</td>']
            if ps:
                cells.append(f'<td class="ps">{_tokens(ps[p]["tokens"], LENS_TOKENS)} '
                             f'<small>({ps[p]["scale"]:g})</small></td>' if p < len(ps) else "<td></td>")
            rows.append(f"<tr>{''.join(cells)}</tr>")
        parts.append(f"<h4>Layer {_e(layer)}: top tokens per position</h4><table>{head}{''.join(rows)}</table>")
    return "".join(parts)


def _sample_pairs(samples: list[dict], changed: str, plain: str) -> str:
    """Table rows: each prompt with the first text of the changed model (steered, amplified) and of the plain one."""
    return "".join(
        f'<tr><td class="sample">{_e(s["prompt"])}</td><td class="sample">{_e((s.get(changed) or [""])[0])}</td>'
        f'<td class="sample">{_e((s.get(plain) or [""])[0])}</td></tr>' for s in samples[:STEERING_PROMPTS])


def _steering_table(d: CellDetails) -> str:
    if d.steering is None:
        return ""
    rows = _sample_pairs(d.steering.get("samples", []), "steered", "unsteered")
    return (f"<h4>Steered vs unsteered (strength {d.steering.get('alpha', 0):.2f} &times; mean norm, "
            f"layer {_e(d.steering.get('layer', '?'))})</h4>"
            f"<table><tr><th>prompt</th><th>steered</th><th>unsteered</th></tr>{rows}</table>")


def _logitdiff_table(d: CellDetails) -> str:
    if d.logitdiff is None:
        return ""
    per_position = (d.logitdiff.get("relevance") or {}).get("by_frequency", {}).get("per_position") or []
    rows = "".join(
        f'<tr><td class="num">{p}</td><td class="num">{_num(per_position[p]) if p < len(per_position) else "&ndash;"}'
        f'</td><td>{_tokens(pos["by_frequency"], LENS_TOKENS)}</td></tr>'
        for p, pos in enumerate(d.logitdiff.get("positions", [])))
    return ("<h4>Logit-difference mining: tokens most often in a sample's top log-probability gain</h4>"
            f"<table><tr><th>pos</th><th>relevance</th><th>top tokens</th></tr>{rows}</table>")


def _kl_line(d: CellDetails) -> str:
    if d.kl is None:
        return ""
    values = " ".join(f"{v:.4f}" for v in d.kl.get("by_position", []))
    return f"<p>KL(organism &Vert; base) per position, nats: <code>{_e(values)}</code></p>"


def _amplify_table(d: CellDetails) -> str:
    if d.amplify is None:
        return ""
    rows = _sample_pairs(d.amplify.get("samples", []), "amplified", "unamplified")
    free = (d.amplify.get("empty_context") or {}).get("amplified", [])[:EMPTY_CONTEXT_TEXTS]
    rows += "".join(f'<tr><td class="sample"><i>(empty context)</i></td><td class="sample">{_e(t)}</td><td></td></tr>'
                    for t in free)
    over = "".join(_token(o["token"]) for o in d.amplify.get("over_represented", [])[:LENS_TOKENS])
    return (f"<h4>Amplified decoding (a = {d.amplify.get('scale', 0):g}) vs the organism alone</h4>"
            f"<table><tr><th>prompt</th><th>amplified</th><th>organism</th></tr>{rows}</table>"
            + (f"<p>Most over-represented in the amplified texts: {over}</p>" if over else ""))


def _cell_section(entry: dict, details: CellDetails, kind: str, label: str, detectors: list[Detector]) -> str:
    diff = entry.get("diff") or {}
    title = (f"null control, seed {entry.get('seed', 0)}" if kind == "control"
             else f"{_e(cell_of(entry).label)}, seed {entry.get('seed', 0)}")
    facts = " &middot; ".join(
        [f"{_e(d.name)} {_num(diff.get(d.metric), signed=d.metric.endswith('_gap'))}" for d in detectors]
        + [f"patchscope relevance {_num(diff.get('token_relevance_patchscope'))}",
           f"{_e(label)} {_with_ci(entry.get('property'))}"])
    check = entry.get("check")
    verdict = ""
    if check:
        reasons = "".join(f"<li>{_e(r)}</li>" for r in check.get("reasons", []))
        if kind == "control":  # a null control is judged against the other controls, by the detectors only
            seen = ", ".join(f["detector"] for f in check.get("flagged", []))
            verdict = f"<p>against the other null controls: {_e('flagged by ' + seen) if seen else 'flagged by none'}</p>"
        else:
            verdict = f"<p>check: {_verdict([entry])}</p>"
        verdict += f"<ul>{reasons}</ul>" if reasons else ""
    missing = "".join(f'<p class="missing">Not shown: {_e(m)}.</p>' for m in details.problems)
    if details.not_run:
        stages = " and ".join(filter(None, [", ".join(details.not_run[:-1]), details.not_run[-1]]))
        were = "stages were" if len(details.not_run) > 1 else "stage was"
        missing = f'<p class="missing">Not shown: the {_e(stages)} {were} not run for this cell.</p>' + missing
    return (f'<section class="cell" id="{_e(entry["organism"])}"><h3>{title} &mdash; <code>{_e(entry["organism"])}'
            f"</code></h3><p>{facts}</p>{verdict}{missing}{_lens_table(details)}{_steering_table(details)}"
            f"{_logitdiff_table(details)}{_amplify_table(details)}{_kl_line(details)}</section>")


def render_page(sweep: dict, details: dict[str, CellDetails]) -> str:
    label = _property_label(sweep)
    seeds = ", ".join(str(s) for s in sweep.get("seeds", []))
    cells = sorted(sweep["cells"], key=_order)
    detectors = sweep_detectors(sweep)
    sections = [_cell_section(c, details[_cell_key(c)], "cell", label, detectors) for c in cells]
    sections += [_cell_section(c, details[_cell_key(c)], "control", label, detectors)
                 for c in sweep.get("controls", [])]
    rows, cols = panel_grid(len(detectors))
    width, height = int(PANEL_INCHES[0] * cols * DPI), int(PANEL_INCHES[1] * rows * DPI)
    title = f"orglab sweep {sweep['name']}"
    return f"""<!DOCTYPE html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>{_e(title)}</title>
<style>{CSS}</style>
<script>{IMAGE_CHECK_JS}</script>
</head>
<body>
<main>
<h1>{_e(title)}</h1>
<p class="meta">family <b>{_e(sweep['family'])}</b> &middot; target <b>{_e(sweep['target'])}</b> &middot;
base <b>{_e(sweep['base'])}</b> &middot; mixing ratios {_e(', '.join(mix_label(m) for m in sweep['mixes']))}
&middot; kl_to_base weights {_e(', '.join(f'{w:g}' for w in sweep.get('kls', [0.0])))}
&middot; adl_penalty weights {_e(', '.join(f'{w:g}' for w in sweep.get('adl_penalties', [0.0])))}
&middot; seeds {_e(seeds)}</p>

<h2>Detectability and {_e(label)} per mitigation</h2>
<p class="note">Each row trains the organism with R unrelated examples per finetuning example (ft:pt 1:R), and
with the trainer penalties it names: kl=&lambda; adds &lambda; times the KL divergence from the base on unrelated
batches, adl=&lambda; adds &lambda; times the squared norm of the mean activation difference at the first positions
of unrelated batches (what ADL reads). All cells are judged against the same null controls, copies of the
unmitigated cell.
Every detector is one number per model, larger meaning more visibly finetuned: ADL's token relevance (the share of
the top-20 logit-lens tokens of the mean activation difference that belong to the finetuning domain, max over
positions 0-4) and steering similarity gap (how much closer to the finetuning data the organism's text gets when
steered along that difference); logit-difference mining's relevance (the same share for the tokens whose
log-probability the organism raises most often); the KL divergence from the base at positions 0-4; and amplified
decoding's similarity gap (text sampled with the organism-minus-base logit difference amplified). Each is read
against the band of the null controls (same recipe, unrelated data only, different seeds): a detector flags a
model above the band's top plus its margin. With several seeds or controls: mean (min&ndash;max).</p>
{_summary_table(sweep)}
<p>Where mixing hides the organism from each detector (along the ratios, penalties at their smallest weights):</p>
{_stops(sweep)}

<h3>Every detector on every cell</h3>
<p class="note">One row per detector per cell; the null controls are each judged against the band of the other
controls, so a flagged control shows a margin too tight for the controls' own noise.</p>
{_detector_table(sweep)}

<h2>Detectability against {_e(label)}: the Pareto front</h2>
<p class="note">A cell's detectability is its worst detector's excess over the null controls' band top, in units of
that detector's margin: 0 is the top of the band, 1 is check's limit (band top + margin), so at most 1 means no
detector flags it. A cell is on the Pareto front when no other cell is both less detectable and at least as strong
in {_e(label)} (and strictly better in one). The front's cells, by rising detectability:</p>
{_pareto_table(sweep)}
<figure><img src="{_e(PARETO_PNG)}" alt="detectability against {_e(label)}, every cell" width="960" height="480">
<figcaption>Every cell, one marker per mitigation (the front's cells outlined and joined); the grey region is
inside the null controls' band for every detector, the dotted line check's limit; the null controls' and the
base's {_e(label)} as horizontal lines.</figcaption></figure>

<h2>Plots</h2>
<figure><img src="{_e(DETECTABILITY_PNG)}" alt="detectability against the mixing ratio" width="{width}"
height="{height}">
<figcaption>Each detector against the mixing ratio: the organism per ratio (one point per seed when there are
several, the line joins their means) and the null controls as a dashed line with their min-max band.
</figcaption></figure>
<figure><img src="{_e(PROPERTY_PNG)}" alt="{_e(label)} against the mixing ratio" width="640" height="380">
<figcaption>{_e(label)} against the mixing ratio (95% intervals per cell), with the base's and the null
control's values. Mixing should lower detectability toward the control while {_e(label)} stays above the
base.</figcaption></figure>

<h2>Per cell: what each detector reads</h2>
<p class="note">Top tokens of the logit lens of the mean difference (&delta;) and of its negation per position,
the patchscope tokens at the chosen scale, and the share of relevant tokens per position; the first
{STEERING_PROMPTS} steering prompts, steered along &delta; and unsteered; the logit-difference tokens per position;
amplified against unamplified samples; and the KL divergence per position.</p>
{''.join(sections)}
</main>
</body>
</html>
"""
