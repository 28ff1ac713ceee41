"""Near-duplicate solutions: which pairs of students handed in (almost) the same code.

**The score never changes a grade.** It is a lead for a person to read, nothing more: two students can
write the same few lines honestly, and a determined copier can restructure code beyond what any
fingerprinting finds. The grader only lists the pairs, with the matching lines side by side, so that an
instructor can look at them.

The method is *winnowing* (Schleimer, Wilkerson and Aiken, "Winnowing: local algorithms for document
fingerprinting", SIGMOD 2003), the algorithm behind MOSS:

1. **Normalise.** The source is split into Python tokens (:mod:`tokenize`; a small regular-expression
   tokenizer, which gives the same tokens wherever both work, takes over when the source does not
   tokenise: an unclosed bracket or string, inconsistent indentation, shell lines from a ``%%bash`` cell).
   Comments, line breaks and indentation are dropped; so are statements that are only a string (docstrings).
   Every other string becomes ``S``, every number ``N``, and every identifier ``V``, except keywords,
   unshadowed builtins (``range``, ``len``, ``isinstance``: a builtin the code itself binds, such as a
   parameter called ``input``, is a variable like any other) and attribute names after a ``.``
   (``x.new_zeros``, ``F.pad``, ``torch.einsum``). Renaming variables, rewording comments, re-indenting or
   re-spacing the code therefore changes nothing.
2. **k-grams.** Every run of ``k`` consecutive normalised tokens is hashed with BLAKE2b (8 bytes): the same
   code gives the same hashes in every process, on every machine (Python's own ``hash()`` of a string is
   salted per process and would not).
3. **Winnow.** Of every ``window`` consecutive k-gram hashes, the smallest is kept (the rightmost one on a
   tie; a position kept by several windows counts once). These are the fingerprints, each with the source
   lines its k-gram covers. Two guarantees follow: any run of at least ``k + window - 1`` normalised tokens
   that two sources share yields at least one shared fingerprint, and no run shorter than ``k`` tokens ever
   does. About ``2 / (window + 1)`` of all k-grams are kept.
4. **Compare.** A pair's score is the number of fingerprints the two share divided by the smaller of their
   two fingerprint counts: 1.0 when one student's code is contained in the other's, whatever the
   difference in length.

Parameters, with their defaults:

``k = 5``
    the k-gram length in normalised tokens, the *noise threshold*: shorter coincidences are never seen.
    Normalised tokens are coarse (``x = y ( z`` is ``V = V ( V``), so ``k`` much smaller matches idioms
    every solution has; much larger and a copy survives by changing one token in every few.
``window = 4``
    the winnowing window. Together with ``k`` it sets the *guarantee threshold* ``k + window - 1 = 8``
    tokens: a shared run that long (``out = full[:, :, p:q]`` is 12 tokens) is always found.
``threshold = 0.6``
    the smallest score reported. In this module's tests (a transposed convolution, template subtracted) a
    copy with every name changed, new comments and spacing, and statements reordered scores 0.95; two
    honest solutions by different methods (a loop over kernel taps, zero insertion and a flipped kernel,
    ``F.fold``) 0.1 to 0.3; two honest loops that both stamp the kernel about 0.5, since they share the
    problem's idioms (``V, V = pair(V)``, the crop, the bias). Without the template, honest pairs score
    about 0.6: hence the template.
``min_fingerprints = MIN_FINGERPRINTS = 8``
    students with fewer (template fingerprints removed) are not compared at all: a stub, an empty or an
    almost empty submission would otherwise "match" another one on the few tokens they have.

**Why the template is subtracted.** Every student's notebook contains the released notebook's code: the
imports, the ``def`` lines, the helpers it gives, the test cells. That code is identical by design, and it
is usually larger than what a student adds, so counting it would make every pair of students look alike,
and two students who each wrote three lines look like copies of each other. Every k-gram of the template
(all of them, not only those the template's own winnowing would keep: which k-grams a window keeps depends
on its neighbours, so a student's winnowing can keep a template k-gram the template's did not) is removed
from every student's fingerprints before counting, on both sides of the score. Called without a template,
the score counts the shared skeleton too, and almost every pair is reported.

Speed: one inverted index, from fingerprint to the students that have it, so only pairs that share
something are ever counted; 300 students with about 230 lines each (2,800 tokens) take about 3 s of one
CPU, half of it tokenising. The side-by-side lines cost about 1 ms per reported pair.

Usage::

    matches = similar_pairs({"alice": code_a, "bob": code_b, ...}, template=released_code)
    for m in matches:
        print(m.a, m.b, f"{m.score:.0%}")
        for line_a, line_b, text_a, text_b in m.lines:
            print(f"  {line_a:4} {text_a:50.50}  | {line_b:4} {text_b}")
"""

from __future__ import annotations

import ast
import builtins
import hashlib
import io
import keyword
import re
import tokenize
from bisect import bisect_left, bisect_right
from collections import Counter, defaultdict
from dataclasses import dataclass, field

DEFAULT_K = 5
DEFAULT_WINDOW = 4
DEFAULT_THRESHOLD = 0.6
MIN_FINGERPRINTS = 8     # fewer fingerprints (template ones removed): not compared at all
MAX_LINES = 40           # side-by-side line pairs kept per match

KEYWORDS = frozenset(keyword.kwlist)
BUILTINS = frozenset(name for name in dir(builtins) if not name.startswith("_"))
KEPT_NAMES = KEYWORDS | BUILTINS   # identifiers normalisation keeps as they are (unless the code rebinds them)

# One occurrence of a token: (kind, text, first line, last line); kind is name, number, string, op or newline.
Token = tuple[str, str, int, int]


@dataclass
class Match:
    """One pair of students whose code shares at least the threshold.

    ``a`` < ``b`` are the two student ids; ``score`` (0..1) is the number of fingerprints they share divided
    by the smaller of their two fingerprint counts, template fingerprints excluded from all three. ``lines``
    are the matching lines side by side, in the order of ``a``'s lines, at most :data:`MAX_LINES`: (line in
    a, line in b, text of that line in a, text of that line in b), lines numbered from 1 in the source as
    given to :func:`similar_pairs`, text stripped of its indentation. Statements that normalise alike
    (``sH, sW = pair(stride)`` and ``pH, pW = pair(padding)``) may be paired either way round.
    """

    a: str
    b: str
    score: float
    lines: list[tuple[int, int, str, str]] = field(default_factory=list)


# --------------------------------------------------------------------------------------------------------------
# Tokens


def _source_lines(source: str) -> list[str]:
    """The source's lines, split as the tokenizers count them (any of \\r\\n, \\r, \\n ends a line)."""
    return source.replace("\r\n", "\n").replace("\r", "\n").split("\n")


_KINDS = {tokenize.NAME: "name", tokenize.NUMBER: "number", tokenize.STRING: "string", tokenize.OP: "op",
          tokenize.ERRORTOKEN: "op", tokenize.NEWLINE: "newline"}   # the rest (comments, NL, INDENT...): dropped
# Python >= 3.12 tokenises an f-string's parts (3.14 a t-string's too): they become one string token again.
_STRING_START = frozenset(getattr(tokenize, n) for n in ("FSTRING_START", "TSTRING_START") if hasattr(tokenize, n))
_STRING_END = frozenset(getattr(tokenize, n) for n in ("FSTRING_END", "TSTRING_END") if hasattr(tokenize, n))


def _python_tokens(source: str) -> list[Token]:
    """The tokens :mod:`tokenize` finds; raises whatever it raises on a source it cannot tokenise."""
    out: list[Token] = []
    depth, first = 0, 0   # inside an f-string, and the line it started on
    for typ, text, start, end, _ in tokenize.generate_tokens(io.StringIO(source).readline):
        if typ in _STRING_START:
            if depth == 0:
                first = start[0]
            depth += 1
        elif typ in _STRING_END:
            depth -= 1
            if depth == 0:
                out.append(("string", text, first, end[0]))
        elif not depth:
            kind = _KINDS.get(typ)
            if kind == "newline":
                out.append(("newline", "", start[0], start[0]))
            elif kind is not None and (kind != "op" or text.strip()):   # an ERRORTOKEN can be a stray space
                out.append((kind, text, start[0], end[0]))
    return out


_PREFIX = r"(?:[rRbBuUfFtT]{1,2})?"
_FALLBACK = re.compile(
    rf"""(?P<string>{_PREFIX}(?:'''(?:\\.|[^\\])*?(?:'''|\Z)|\"\"\"(?:\\.|[^\\])*?(?:\"\"\"|\Z)
                              |'(?:\\.|[^'\\\n])*'?|"(?:\\.|[^"\\\n])*"?))
      |(?P<comment>\#[^\n]*)
      |(?P<number>0[xXoObB][0-9a-fA-F_]+|(?:\d[\d_]*(?:\.[\d_]*)?|\.\d[\d_]*)(?:[eE][+-]?\d[\d_]*)?[jJ]?)
      |(?P<name>[^\W\d]\w*)
      |(?P<cont>\\\n)
      |(?P<newline>\n)
      |(?P<space>[^\S\n]+)
      |(?P<op>\*\*=|//=|>>=|<<=|\.\.\.|->|:=|==|!=|<=|>=|\*\*|//|<<|>>|[-+*/%&|^@]=|.)""",
    re.VERBOSE | re.DOTALL)


def _fallback_tokens(source: str) -> list[Token]:
    """A forgiving tokenizer for sources :mod:`tokenize` refuses; the same tokens wherever both work."""
    out: list[Token] = []
    line, depth = 1, 0
    for m in _FALLBACK.finditer(source):
        kind, text = m.lastgroup, m.group()
        last = line + text.count("\n")
        if kind == "newline":
            if depth == 0 and out and out[-1][0] != "newline":
                out.append(("newline", "", line, line))
        elif kind in ("string", "number", "name", "op"):
            if kind == "op":
                depth = max(0, depth + (text in "([{") - (text in ")]}"))
            out.append((kind, text, line, last))
        line = last
    return out


def _tokens(source: str) -> tuple[list[Token], bool]:
    """The source's tokens, and whether :mod:`tokenize` produced them (else the fallback did). Never raises."""
    source = (source or "").replace("\r\n", "\n").replace("\r", "\n")
    try:
        return _python_tokens(source), True
    except Exception:  # noqa: BLE001 - TokenError, IndentationError, SyntaxError, ValueError: any refusal
        return _fallback_tokens(source), False


def _shadowed_builtins(source: str, tokens: list[Token], parsed: bool) -> frozenset[str]:
    """Builtin names the code binds itself (``def f(input)``, ``max = ...``): variables, not builtins."""
    bound: set[str] = set()
    tree = None
    if parsed:
        try:
            tree = ast.parse(source.replace("\r\n", "\n").replace("\r", "\n"))
        except Exception:  # noqa: BLE001 - a syntax error that tokenises, IPython magics: use the tokens
            tree = None
    if tree is not None:
        for node in ast.walk(tree):
            if isinstance(node, ast.Name) and not isinstance(node.ctx, ast.Load):
                bound.add(node.id)
            elif isinstance(node, ast.arg):
                bound.add(node.arg)
            elif isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)):
                bound.add(node.name)
            elif isinstance(node, ast.alias):
                bound.add(node.asname or node.name.split(".")[0])
            elif isinstance(node, ast.ExceptHandler) and node.name:
                bound.add(node.name)
            elif isinstance(node, (ast.Global, ast.Nonlocal)):
                bound.update(node.names)
    else:
        # Without a tree: a name assigned to (`max = ...` outside brackets, `(max := ...)` anywhere), named by
        # def/class/as/for/import, or a def's parameter (after `(` or `,` in the def's own parentheses).
        depth, def_depth = 0, None
        for i, (kind, text, _, _) in enumerate(tokens):
            if kind == "op" and text in "([{)]}":
                depth += 1 if text in "([{" else -1
                if def_depth is not None and depth <= def_depth:
                    def_depth = None
                continue
            if kind == "newline":
                depth, def_depth = 0, None
                continue
            if kind != "name":
                continue
            before = tokens[i - 1][1] if i else ""
            after = tokens[i + 1][1] if i + 1 < len(tokens) else ""
            if text == "def" and def_depth is None:
                def_depth = depth
            elif text in BUILTINS and (
                    after == ":=" or (after == "=" and depth == 0 and before not in (":", "->"))
                    or before in ("def", "class", "as", "for", "import")
                    or (def_depth is not None and depth == def_depth + 1 and before in ("(", ",", "*", "**"))):
                bound.add(text)
    return frozenset(bound & BUILTINS - KEYWORDS)   # None, True, False: in builtins, but keywords


def normalise(source: str) -> list[tuple[str, int, int]]:
    """The source as normalised tokens: (token, first line, last line). See the module's docstring."""
    raw, parsed = _tokens(source)
    kept = KEPT_NAMES - _shadowed_builtins(source or "", raw, parsed)
    out: list[tuple[str, int, int]] = []
    statement: list[Token] = []
    for tok in raw + [("newline", "", 0, 0)]:
        if tok[0] != "newline":
            statement.append(tok)
            continue
        if statement and any(kind != "string" for kind, _, _, _ in statement):  # else a docstring: dropped
            previous = ""
            for kind, text, first, last in statement:
                if kind == "name":
                    norm = text if (text in kept or previous == ".") else "V"
                elif kind == "number":
                    norm = "N"
                elif kind == "string":
                    norm = "S"
                else:
                    norm = text
                out.append((norm, first, last))
                previous = text if kind == "op" else ""
        statement = []
    return out


# --------------------------------------------------------------------------------------------------------------
# Fingerprints


def _check(k: int, window: int) -> None:
    if not (isinstance(k, int) and isinstance(window, int)) or k < 1 or window < 1:
        raise ValueError(f"k and window must be positive integers, got k={k!r}, window={window!r}")


def _kgrams(tokens: list[tuple[str, int, int]], k: int, cache: dict) -> list[int]:
    """The stable 64-bit hash of every k-gram of normalised tokens, in order."""
    texts = [t for t, _, _ in tokens]
    hashes = []
    for i in range(len(texts) - k + 1):
        gram = "\x1f".join(texts[i:i + k])
        h = cache.get(gram)
        if h is None:
            digest = hashlib.blake2b(gram.encode("utf-8", "surrogatepass"), digest_size=8).digest()
            h = cache[gram] = int.from_bytes(digest, "big")
        hashes.append(h)
    return hashes


def _winnow(hashes: list[int], window: int) -> list[int]:
    """The positions winnowing keeps: the minimum of every `window` consecutive hashes, rightmost on a tie.

    Fewer hashes than a window: the minimum of them all. Positions are returned once each, in order.
    """
    n = len(hashes)
    if n == 0:
        return []
    window = min(window, n)
    kept: list[int] = []
    best = -1
    for end in range(window - 1, n):
        start = end - window + 1
        if best < start:                     # the minimum left the window: look at the whole window again
            best = start
            for i in range(start + 1, end + 1):
                if hashes[i] <= hashes[best]:
                    best = i
        elif hashes[end] <= hashes[best]:    # else only the newcomer can beat it (or tie, being rightmost)
            best = end
        if not kept or kept[-1] != best:
            kept.append(best)
    return kept


def _occurrences(source: str, k: int, window: int, cache: dict, template: frozenset[int] | set[int] = frozenset()
                 ) -> list[tuple[int, tuple[int, ...]]]:
    """Winnowed fingerprints, template ones left out, in the order of the source: (hash, lines) for each.

    ``lines`` holds the line of each of the k-gram's k tokens, negated for a token that some template k-gram
    covers too: the side-by-side lines show what the students wrote, not the template code a k-gram at the
    edge of their own reaches into.
    """
    tokens = normalise(source)
    hashes = _kgrams(tokens, k, cache)
    covered = [False] * len(tokens)
    for i, h in enumerate(hashes):
        if h in template:
            covered[i:i + k] = [True] * k
    return [(hashes[pos], tuple(-tokens[i][1] if covered[i] else tokens[i][1] for i in range(pos, pos + k)))
            for pos in _winnow(hashes, window) if hashes[pos] not in template]


def _by_hash(order: list[tuple[int, tuple[int, ...]]]) -> dict[int, list[tuple[int, ...]]]:
    out: dict[int, list[tuple[int, ...]]] = defaultdict(list)
    for h, lines in order:
        out[h].append(lines)
    return dict(out)


def fingerprint(source: str, k: int = DEFAULT_K, window: int = DEFAULT_WINDOW) -> dict[int, list[int]]:
    """The winnowed fingerprints of Python ``source``: hash -> the lines (from 1) where a kept k-gram starts.

    ``k`` is the k-gram length in normalised tokens, ``window`` the winnowing window (module docstring).
    Never raises on the source: one that does not tokenise goes through a forgiving tokenizer; an empty one
    has no fingerprints. The hashes are the same in every process.
    """
    _check(k, window)
    out: dict[int, set[int]] = defaultdict(set)
    for h, lines in _occurrences(source, k, window, {}):
        out[h].add(abs(lines[0]))
    return {h: sorted(starts) for h, starts in out.items()}


# --------------------------------------------------------------------------------------------------------------
# Pairs


@dataclass
class _Doc:
    """One student's code, fingerprinted."""

    lines: list[str]                                 # the source's lines
    order: list[tuple[int, tuple[int, ...]]]         # (hash, lines of its k tokens), in the source's order
    occ: dict[int, list[tuple[int, ...]]]            # hash -> lines of its k tokens, for each occurrence
    starts: dict[int, list[int]] = field(default_factory=dict)   # hash -> first line of each occurrence

    def __post_init__(self):
        self.starts = {h: [abs(lines[0]) for lines in spans] for h, spans in self.occ.items() if len(spans) > 1}


def _side_by_side(a: _Doc, b: _Doc, limit: int = MAX_LINES) -> list[tuple[int, int, str, str]]:
    """The lines of a and b that shared fingerprints cover, paired up, in a's order, at most ``limit``.

    The k tokens of a shared k-gram are the same tokens in both, so the line of each token in a pairs with the
    line of the same token in b (template tokens left out). A fingerprint found once in each is an anchor;
    one found several times (normalised, ``sH, sW = pair(stride)`` and ``pH, pW = pair(padding)`` are the
    same) pairs each of its occurrences in a with the occurrence in b whose offset (line in b minus line in
    a) is closest to the nearest anchor's. A pair of lines is shown only if it holds at least half as many
    token pairs as the best pair of either line: a k-gram that straddles two statements (the end of one
    call and the start of the next assignment) is common enough to pair a line with the wrong one now and
    then, but never with much support. Only the shared fingerprints up to the ``limit``-th line of a that
    they cover are looked at, so that the cost of a pair does not grow with the length of the code.
    """
    shared: list[tuple[int, tuple[int, ...]]] = []
    seen: set[int] = set()
    cutoff = None
    for h, in_a in a.order:
        if h not in b.occ:
            continue
        if cutoff is not None and abs(in_a[0]) > cutoff:
            break
        shared.append((h, in_a))
        if cutoff is None:
            seen.update(n for n in in_a if n > 0)
            if len(seen) > limit:
                cutoff = max(seen)

    anchors = [(abs(in_a[0]), abs(b.occ[h][0][0])) for h, in_a in shared if len(a.occ[h]) == len(b.occ[h]) == 1]
    anchor_lines = [la for la, _ in anchors]   # ascending: `shared` is in a's order

    support: Counter[tuple[int, int]] = Counter()
    for h, in_a in shared:
        candidates = b.occ[h]
        if len(candidates) > 1 and anchors:
            # the nearest anchor's offset, then the occurrence in b nearest to where that offset points
            a0 = abs(in_a[0])
            i = bisect_left(anchor_lines, a0)
            if i == len(anchors) or (i and a0 - anchor_lines[i - 1] <= anchor_lines[i] - a0):
                i -= 1
            target = a0 + anchors[i][1] - anchors[i][0]
            starts = b.starts[h]
            j = bisect_left(starts, target)
            if j == len(starts) or (j and target - starts[j - 1] <= starts[j] - target):
                j -= 1
            in_b = candidates[j]
        else:
            in_b = candidates[0]
        for la, lb in zip(in_a, in_b):
            if la > 0 and lb > 0:
                support[la, lb] += 1
    best_a: dict[int, int] = {}
    best_b: dict[int, int] = {}
    for (la, lb), n in support.items():
        best_a[la], best_b[lb] = max(best_a.get(la, 0), n), max(best_b.get(lb, 0), n)
    pairs = sorted(pair for pair, n in support.items() if 2 * n >= max(best_a[pair[0]], best_b[pair[1]]))

    def text(lines: list[str], n: int) -> str:
        return lines[n - 1].strip() if 0 < n <= len(lines) else ""

    return [(la, lb, text(a.lines, la), text(b.lines, lb)) for la, lb in pairs[:limit]]


def similar_pairs(sources: dict[str, str], template: str = "", threshold: float = DEFAULT_THRESHOLD,
                  k: int = DEFAULT_K, window: int = DEFAULT_WINDOW, *,
                  min_fingerprints: int = MIN_FINGERPRINTS) -> list[Match]:
    """The pairs of students whose code shares at least ``threshold`` of its fingerprints, highest score first.

    ``sources``: student id -> that student's solution code (their code cells joined). ``template``: the
    released notebook's code; every k-gram found in it is ignored (module docstring: why). ``threshold``:
    the smallest score reported (pairs that share no fingerprint at all never are). ``k``, ``window``: as
    for :func:`fingerprint`. Students with fewer than ``min_fingerprints`` fingerprints left once the
    template's are removed (stubs, empty or nearly empty submissions) are compared with no one.

    Never raises on a source (syntax errors, IPython magics, empty strings); the result is the same in every
    process. Ties in score are ordered by the ids.
    """
    _check(k, window)
    cache: dict[str, int] = {}
    template_hashes = set(_kgrams(normalise(template), k, cache)) if template else set()

    docs: dict[str, _Doc] = {}
    for sid, source in sources.items():
        order = _occurrences(source or "", k, window, cache, template_hashes)
        occ = _by_hash(order)
        if len(occ) >= max(1, min_fingerprints):
            docs[str(sid)] = _Doc(_source_lines(source or ""), order, occ)

    ids = sorted(docs)
    sizes = [len(docs[sid].occ) for sid in ids]
    index: dict[int, list[int]] = defaultdict(list)   # fingerprint -> students that have it (ascending)
    for i, sid in enumerate(ids):
        for h in docs[sid].occ:
            index[h].append(i)

    scored: list[tuple[float, int, int]] = []
    for i, sid in enumerate(ids):
        shared: Counter[int] = Counter()
        for h in docs[sid].occ:
            students = index[h]
            if len(students) > 1:
                shared.update(students[bisect_right(students, i):])   # each pair counted from its lower id
        for j, count in shared.items():
            score = count / min(sizes[i], sizes[j])
            if score >= threshold:
                scored.append((score, i, j))

    scored.sort(key=lambda s: (-s[0], ids[s[1]], ids[s[2]]))
    matches = []
    for score, i, j in scored:
        matches.append(Match(ids[i], ids[j], score, _side_by_side(docs[ids[i]], docs[ids[j]])))
    return matches
