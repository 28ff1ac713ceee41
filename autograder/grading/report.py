"""The class report: what a class got wrong, not only who. ``make grade`` writes it with the grades.

    OUT/report.json           the figures, for scripts
    OUT/report.html           the same for a reader: offline, one page plus its image
    OUT/report-files/scores.svg   the score distribution

Per graded part: the pass rate, and the **named mistakes** the checks recognised, counted across the class
by each mistake's stable id (:class:`autograder._cases.Mistake`; rewording a message never splits a count),
with the students who made each; where no mistake was named, the most common failure lines. Then the
submissions the source policy flagged or the sandbox stopped (timeouts, crashes), the slowest ones, pairs of
near-duplicate solutions (:mod:`autograder.grading.similarity`; it never changes a grade) and a link to every
student's feedback page. Everything is rebuilt from the grader's state, as grades.csv is.
"""

from __future__ import annotations

import html
import json
import re
import statistics
from collections import Counter, defaultdict
from pathlib import Path

SHOWN_PAIRS = 60  # the most similar pairs shown on the page (report.json lists them all)
FLAG_TEXT = {"policy": "flagged by the source policy (manual grade)", "timeout": "stopped: time limit",
             "crash": "stopped: the process ended (crash, memory or CPU limit)",
             "protocol": "stopped: broke the grading protocol"}


def _first_line_key(message: str) -> str:
    """A failure's one-line form with its numbers blanked, so the same failure on other inputs groups together."""
    from .cli import reason_line

    line = reason_line(message)
    line = re.sub(r"`[^`]*`", "`…`", line)
    return re.sub(r"\d+(\.\d+)?(e-?\d+)?", "#", line)[:240]


def build(students, aid: str, parts, scores: dict, pairs=(), missing=()) -> dict:
    """The report's figures from the stamped students (``scores``: manual grades, (student, part) -> points;
    ``pairs``: (solution cell's grade_id, :class:`~autograder.grading.similarity.Match`))."""
    total = sum(p.points for p in parts)

    def points(s, gid):
        return scores.get((s.id, gid), s.parts.get(gid, (0.0, None))[0])

    totals = {s.id: sum(points(s, p.grade_id) for p in parts) for s in students}
    per_part = []
    for p in parts:
        gid = p.grade_id
        got = [points(s, gid) for s in students]
        passed = [s.id for s in students if s.parts.get(gid, (0.0, "x"))[1] is None]
        named: dict[str, dict] = {}
        unnamed: Counter = Counter()
        unnamed_who: dict[str, list] = defaultdict(list)
        for s in sorted(students, key=lambda s: s.id):
            pts, msg = s.parts.get(gid, (0.0, s.problem or "not graded"))
            if msg is None:
                continue
            seen = (s.observed or {}).get(gid, {})
            if seen.get("mistake"):
                entry = named.setdefault(seen["mistake"], {"id": seen["mistake"], "text": seen.get("mistake_text", ""),
                                                           "students": []})
                entry["text"] = entry["text"] or seen.get("mistake_text", "")
                entry["students"].append(s.id)
            elif not seen.get("flag") and not s.problem:
                key = _first_line_key(msg)
                unnamed[key] += 1
                unnamed_who[key].append(s.id)
        per_part.append({
            "grade_id": gid, "points": p.points,
            "mean": round(statistics.fmean(got), 3) if got else 0.0,
            "median": statistics.median(got) if got else 0.0,
            "pass_rate": round(len(passed) / len(students), 4) if students else 0.0,
            "passed": len(passed),
            "mistakes": sorted(named.values(), key=lambda m: (-len(m["students"]), m["id"])),
            "other_failures": [{"line": k, "count": n, "students": unnamed_who[k]} for k, n in unnamed.most_common(5)],
        })
    flagged = []
    for s in sorted(students, key=lambda s: s.id):
        flags = sorted({v["flag"] for v in (s.observed or {}).values() if v.get("flag")} | ({"policy"} if s.manual else set()))
        if s.problem:
            flagged.append({"student": s.id, "flags": ["not graded"], "why": s.problem})
        elif flags:
            flagged.append({"student": s.id, "flags": flags, "why": "; ".join(FLAG_TEXT.get(f, f) for f in flags)})
    slowest = sorted(({"student": s.id, "seconds": round(sum(s.seconds.values()), 2)} for s in students if s.seconds),
                     key=lambda r: -r["seconds"])[:5]
    ratios = sorted(({"student": s.id, "ratio": round(v["ratio"], 3)} for s in students
                     for v in (s.observed or {}).values() if "ratio" in v), key=lambda r: r["ratio"])
    values = list(totals.values())
    return {
        "assignment": aid, "students": len(students), "no_submission": [m["id"] for m in missing],
        "max_score": total,
        "score": {"mean": round(statistics.fmean(values), 3) if values else 0.0,
                  "median": statistics.median(values) if values else 0.0,
                  "histogram": histogram(values, total)},
        "parts": per_part, "flagged": flagged, "slowest": slowest, "speed": ratios,
        "similar_pairs": [{"cell": gid, "a": m.a, "b": m.b, "score": round(m.score, 3),
                           "lines": [list(x) for x in m.lines]} for gid, m in pairs],
        "feedback": {s.id: f"feedback/{s.id}/{aid}.html" for s in sorted(students, key=lambda s: s.id)},
        "totals": totals,
    }


def histogram(values, total: float, bins: int = 10) -> list[dict]:
    """Counts of total scores in ``bins`` equal ranges of [0, total] (the last range includes full marks)."""
    width = (total or 1) / bins
    counts = [0] * bins
    for v in values:
        counts[min(bins - 1, max(0, int(v / width)))] += 1
    return [{"from": round(k * width, 3), "to": round((k + 1) * width, 3), "count": c} for k, c in enumerate(counts)]


def scores_svg(data: dict) -> str:
    """The score distribution as an SVG bar chart, drawn at the size it is shown (text 13 px and up)."""
    bins = data["score"]["histogram"]
    width, height, left, bottom, top = 640, 260, 48, 40, 16
    peak = max([b["count"] for b in bins] + [1])
    bar = (width - left - 10) / len(bins)
    parts = [f'<svg xmlns="http://www.w3.org/2000/svg" width="{width}" height="{height}" viewBox="0 0 {width} {height}" '
             f'font-family="sans-serif" font-size="13"><title>Score distribution of {html.escape(data["assignment"])}'
             f'</title>']
    plot = height - bottom - top
    for k, b in enumerate(bins):
        h = plot * b["count"] / peak
        x = left + k * bar
        parts.append(f'<rect x="{x + 2:.1f}" y="{top + plot - h:.1f}" width="{bar - 4:.1f}" height="{h:.1f}" '
                     f'fill="#4477aa"><title>{b["from"]:g}–{b["to"]:g}: {b["count"]}</title></rect>')
        if b["count"]:
            parts.append(f'<text x="{x + bar / 2:.1f}" y="{top + plot - h - 3:.1f}" text-anchor="middle">{b["count"]}</text>')
        parts.append(f'<text x="{x:.1f}" y="{height - bottom + 16}" text-anchor="middle">{b["from"]:g}</text>')
    parts.append(f'<text x="{left + len(bins) * bar:.1f}" y="{height - bottom + 16}" text-anchor="middle">'
                 f'{bins[-1]["to"]:g}</text>')
    parts.append(f'<line x1="{left}" y1="{top + plot}" x2="{width - 10}" y2="{top + plot}" stroke="#333"/>')
    parts.append(f'<text x="{(left + width) / 2:.0f}" y="{height - 6}" text-anchor="middle">total score</text>')
    parts.append(f'<text x="14" y="{top + plot / 2:.0f}" text-anchor="middle" transform="rotate(-90 14 '
                 f'{top + plot / 2:.0f})">students</text></svg>')
    return "".join(parts)


def render(data: dict) -> str:
    """report.html: the figures of :func:`build` for a reader (no script, no outside resource)."""
    e = html.escape
    aid = data["assignment"]

    def who(ids, limit=12):
        links = [f'<a href="{e(data["feedback"][i])}">{e(i)}</a>' if i in data["feedback"] else e(i)
                 for i in ids[:limit]]
        return ", ".join(links) + (f" and {len(ids) - limit} more" if len(ids) > limit else "")

    sections = []
    for p in data["parts"]:
        rate = p["pass_rate"] * 100
        rows = "".join(f'<tr><td>{e(m["text"] or m["id"])}<br><code>{e(m["id"])}</code></td>'
                       f'<td class="n">{len(m["students"])}</td><td>{who(m["students"])}</td></tr>'
                       for m in p["mistakes"])
        other = "".join(f'<tr><td>{e(f["line"])}</td><td class="n">{f["count"]}</td><td>{who(f["students"])}</td></tr>'
                        for f in p["other_failures"])
        sections.append(
            f'<section><h3>{e(p["grade_id"])} <small>({p["points"]:g} points)</small></h3>'
            f'<p>passed by {p["passed"]} of {data["students"]} ({rate:.0f}%); mean {p["mean"]:g}, median '
            f'{p["median"]:g} points.</p><div class="bar"><div style="width:{rate:.1f}%"></div></div>'
            + (f'<table><tr><th>named mistake</th><th>students</th><th>who</th></tr>{rows}</table>' if rows else
               '<p>No named mistake.</p>')
            + (f'<table><tr><th>other failures (no mistake named)</th><th>students</th><th>who</th></tr>{other}</table>'
               if other else '') + '</section>')
    flagged = "".join(f'<tr><td>{who([f["student"]])}</td><td>{e(", ".join(f["flags"]))}</td><td>{e(f["why"])}</td></tr>'
                      for f in data["flagged"])
    slow = "".join(f'<tr><td>{who([r["student"]])}</td><td class="n">{r["seconds"]:g} s</td></tr>' for r in data["slowest"])
    speed = "".join(f'<tr><td>{who([r["student"]])}</td><td class="n">{r["ratio"]:g}×</td></tr>' for r in data["speed"][:10])
    similar = "".join(
        f'<details><summary>{who([m["a"]])} and {who([m["b"]])}, cell <code>{e(m["cell"])}</code>: '
        f'{m["score"] * 100:.0f}% of fingerprints shared</summary><table class="code"><tr><th>{e(m["a"])}</th><th>{e(m["b"])}</th></tr>'
        + "".join(f'<tr><td><code>{la}: {e(ta)}</code></td><td><code>{lb}: {e(tb)}</code></td></tr>'
                  for la, lb, ta, tb in m["lines"]) + '</table></details>' for m in data["similar_pairs"][:SHOWN_PAIRS])
    if len(data["similar_pairs"]) > SHOWN_PAIRS:
        similar += (f'<p>… and {len(data["similar_pairs"]) - SHOWN_PAIRS} more pairs, in report.json; a higher '
                    f'threshold (--similarity) shows fewer.</p>')
    everyone = ", ".join(f'<a href="{e(link)}">{e(sid)}</a> ({data["totals"][sid]:g})'
                         for sid, link in data["feedback"].items())
    missing = (f'<p>On the roster with no submission ({len(data["no_submission"])}): '
               f'{e(", ".join(data["no_submission"]))}</p>' if data["no_submission"] else "")
    return f"""<!doctype html><html lang="en"><head><meta charset="utf-8"><title>Class report: {e(aid)}</title>
<style>body{{font-family:sans-serif;max-width:64em;margin:2em auto;padding:0 1em;line-height:1.4}}
table{{border-collapse:collapse;width:100%;margin:.5em 0}} td,th{{padding:.3em .5em;border-bottom:1px solid #ddd;
text-align:left;vertical-align:top}} td.n{{text-align:right;white-space:nowrap}} code{{font-size:.9em}}
.bar{{background:#eee;height:.6em;width:100%;max-width:30em}} .bar div{{background:#2a7;height:100%}}
section{{margin:1.5em 0}} table.code td{{width:50%;font-size:.85em}} img{{max-width:100%}}</style></head><body>
<h1>Class report: {e(aid)}</h1>
<p>{data["students"]} students graded; mean {data["score"]["mean"]:g}, median {data["score"]["median"]:g} of
{data["max_score"]:g} points.</p>{missing}
<img src="report-files/scores.svg" alt="Histogram of total scores: {e(', '.join(f'{b["count"]} students from {b["from"]:g} to {b["to"]:g}' for b in data["score"]["histogram"] if b["count"]))}" width="640" height="260">
<h2>Each graded part</h2>
<p>Mistakes are named by the checks (a known wrong variant of the computation matched the student's output) and
counted by each mistake's id.</p>
{''.join(sections)}
<h2>Flagged submissions</h2>
{f'<table><tr><th>student</th><th>flags</th><th>why</th></tr>{flagged}</table>' if flagged else '<p>None.</p>'}
<h2>Slowest submissions</h2>
{f'<table><tr><th>student</th><th>grading time</th></tr>{slow}</table>' if slow else '<p>No timings recorded.</p>'}
{f'<h2>Fastest timed kernels</h2><table><tr><th>student</th><th>time / PyTorch</th></tr>{speed}</table>' if speed else ''}
<h2>Similar submissions</h2>
<p>Pairs whose solution code is near-duplicate after normalising names, whitespace and comments, with the
released notebook's own code left out. This never changes a grade: read the pairs and decide.</p>
{similar or '<p>No pair above the threshold.</p>'}
<h2>Every student's feedback</h2><p>{everyone}</p>
</body></html>"""


def write(out: Path, data: dict) -> None:
    """Write report.json, report.html and its image into ``out``."""
    from .cli import atomic_write

    (out / "report-files").mkdir(exist_ok=True)
    atomic_write(out / "report-files" / "scores.svg", scores_svg(data))
    atomic_write(out / "report.json", json.dumps(data, indent=1, ensure_ascii=False))
    atomic_write(out / "report.html", render(data))
