"""Near-duplicate detection (autograder.grading.similarity): copies are found, honest work and the template are not."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
import tokenize

import pytest

from autograder import paths
from autograder.grading import similarity
from autograder.grading.similarity import fingerprint, similar_pairs

# The released notebook's code, as every student's notebook contains it: imports, a helper, the skeleton of the
# function with its docstring, and the visible test cell.
HEADER = '''\
import math

import torch
import torch.nn.functional as F


def pair(v):
    """Return an int or a (height, width) pair as a (height, width) pair."""
    return tuple(v) if isinstance(v, (tuple, list)) else (v, v)


def conv_transpose2d_output_size(size, kernel_size, stride=1, padding=0):
    """Output size along one axis: (size - 1) * stride - 2 * padding + kernel_size."""
    if stride < 1 or padding < 0:
        raise ValueError(f"need stride >= 1 and padding >= 0, got stride={stride}, padding={padding}")
    return (size - 1) * stride - 2 * padding + kernel_size


def conv_transpose2d(input, weight, bias=None, stride=1, padding=0):
    """(N, C_in, H, W) x (C_in, C_out, kH, kW) -> (N, C_out, H_out, W_out)

    Every input pixel stamps a copy of the kernel, scaled by its value, onto the output;
    `padding` then crops that many rows and columns from each border of the full output.
    """
'''

FOOTER = '''

x = torch.randn(2, 3, 5, 5)
w = torch.randn(3, 4, 3, 3)
b = torch.randn(4)
expected = F.conv_transpose2d(x, w, b, stride=2, padding=1)
assert torch.allclose(conv_transpose2d(x, w, b, stride=2, padding=1), expected, atol=1e-5)
print("conv_transpose2d: ok")
'''

TEMPLATE = HEADER + '''\
    ### BEGIN SOLUTION
    raise NotImplementedError()
    ### END SOLUTION
''' + FOOTER

# Alice: one scatter-add per kernel tap.
TAP_LOOP = '''\
    sH, sW = pair(stride)
    pH, pW = pair(padding)
    N, C_in, H, W = input.shape
    _, C_out, kH, kW = weight.shape
    if weight.shape[0] != C_in:
        raise ValueError(f"weight expects {weight.shape[0]} input channels, got {C_in}")
    H_full = (H - 1) * sH + kH
    W_full = (W - 1) * sW + kW
    full = input.new_zeros(N, C_out, H_full, W_full)
    # each kernel tap (a, b) adds weight[:, :, a, b] * x to a strided slice of the full output
    for a in range(kH):
        for b in range(kW):
            tap = torch.einsum("nchw,co->nohw", input, weight[:, :, a, b])
            full[:, :, a:a + (H - 1) * sH + 1:sH, b:b + (W - 1) * sW + 1:sW] += tap
    # padding crops the full output on every side
    out = full[:, :, pH:H_full - pH, pW:W_full - pW]
    if bias is not None:
        out = out + bias.view(1, -1, 1, 1)
    return out
'''

# Bob: Alice's code with every name changed (the parameters too), other comments, other spacing and blank lines,
# and independent statements in another order (the shapes read and checked before the stride and padding pairs
# are made; W_full computed before H_full).
TAP_LOOP_DISGUISED = '''\
    batch, cin, rows, cols = inp.shape
    _, cout, krows, kcols = kern.shape
    if kern.shape[0] != cin:
        raise ValueError(f"bad number of input channels: {cin} vs {kern.shape[0]}")

    # strides and paddings as pairs
    st_y,  st_x = pair( st )
    pad_y,pad_x = pair( pad )

    big_w = (cols - 1) * st_x + kcols
    big_h = (rows - 1) * st_y + krows
    acc = inp.new_zeros(batch, cout, big_h, big_w)

    for ky in range(krows):
        for kx in range(kcols):
            # contribution of this kernel position
            contrib = torch.einsum("nchw,co->nohw", inp, kern[:, :, ky, kx])
            acc[:, :, ky:ky + (rows - 1) * st_y + 1:st_y,
                kx:kx + (cols - 1) * st_x + 1:st_x] += contrib

    res = acc[:, :, pad_y:big_h - pad_y, pad_x:big_w - pad_x]   # remove the padding
    if bias_ is not None:
        res = res + bias_.view(1, -1, 1, 1)
    return res
'''

# Carol: honest, different method: insert zeros between the pixels, then a plain convolution with the flipped,
# transposed kernel, padded by (k - 1 - padding).
ZERO_INSERTION = '''\
    stride_h, stride_w = pair(stride)
    pad_h, pad_w = pair(padding)
    k_h, k_w = weight.shape[2], weight.shape[3]
    # 1. zero insertion: stride - 1 zeros between neighbouring pixels
    n, c, h, w = input.size()
    spread = torch.zeros(n, c, (h - 1) * stride_h + 1, (w - 1) * stride_w + 1,
                         dtype=input.dtype, device=input.device)
    spread[..., ::stride_h, ::stride_w] = input
    # 2. the transposed conv is a normal conv with the kernel flipped and in/out swapped
    kernel = torch.flip(weight, dims=[2, 3]).permute(1, 0, 2, 3).contiguous()
    # 3. full padding k - 1, minus the padding that the transposed conv crops
    extra_h, extra_w = k_h - 1 - pad_h, k_w - 1 - pad_w
    assert extra_h >= 0 and extra_w >= 0, "padding larger than kernel_size - 1 is not handled"
    spread = F.pad(spread, [extra_w, extra_w, extra_h, extra_h])
    result = F.conv2d(spread, kernel)
    if bias is not None:
        result += bias.reshape(1, -1, 1, 1)
    return result
'''

# Gina: honest, the method of the docstring's picture: a loop over the input pixels, each stamping the whole kernel.
PIXEL_LOOP = '''\
    sh, sw = pair(stride)
    ph, pw = pair(padding)
    n, cin, h, w = input.shape
    cout, kh, kw = weight.shape[1:]
    full = torch.zeros(n, cout, (h - 1) * sh + kh, (w - 1) * sw + kw, dtype=input.dtype)
    for y in range(h):
        for x in range(w):
            # this pixel's stamp: sum over input channels of value * kernel
            stamp = torch.einsum("nc,cokl->nokl", input[:, :, y, x], weight)
            full[:, :, y * sh:y * sh + kh, x * sw:x * sw + kw] += stamp
    if ph or pw:
        full = full[:, :, ph:full.shape[2] - ph, pw:full.shape[3] - pw]
    if bias is not None:
        full = full + bias.view(1, cout, 1, 1)
    return full
'''

# Dave: honest, a fourth method: all taps at once as a matrix product, then fold them into place (col2im).
FOLD = '''\
    s = pair(stride)
    p = pair(padding)
    batch, in_ch, height, width = input.shape
    out_ch, kh, kw = weight.shape[1], weight.shape[2], weight.shape[3]
    out_h = conv_transpose2d_output_size(height, kh, s[0], p[0])
    out_w = conv_transpose2d_output_size(width, kw, s[1], p[1])
    cols = weight.reshape(in_ch, out_ch * kh * kw).t() @ input.reshape(batch, in_ch, height * width)
    result = F.fold(cols, output_size=(out_h, out_w), kernel_size=(kh, kw), stride=s, padding=p)
    return result if bias is None else result + bias[None, :, None, None]
'''


def solution(body: str) -> str:
    """A student's code: the template with the stub replaced by ``body``."""
    return HEADER + body + FOOTER


def disguised_solution() -> str:
    """Bob's whole notebook: his signature renames the parameters too, and his spacing differs."""
    header = HEADER.replace("def conv_transpose2d(input, weight, bias=None, stride=1, padding=0):",
                            "def conv_transpose2d(inp, kern, bias_=None, st=1, pad=0):")
    return header + TAP_LOOP_DISGUISED + "\n\n" + FOOTER


def line_of(source: str, needle: str) -> int:
    """The line (from 1) of the only line of ``source`` that contains ``needle``."""
    found = [n for n, line in enumerate(source.split("\n"), 1) if needle in line]
    assert len(found) == 1, (needle, found)
    return found[0]


def score(a: str, b: str, template: str = TEMPLATE) -> float:
    """The pair's score, however low (0.0 when they share no fingerprint at all)."""
    found = similar_pairs({"a": a, "b": b}, template=template, threshold=0.0)
    return found[0].score if found else 0.0


# --------------------------------------------------------------------------------------------------------------


def test_disguised_copy_is_found_with_the_right_lines():
    # Renaming (a parameter that shadows a builtin too), comments, docstrings and spacing change no fingerprint.
    plain = "def scale(input, k):\n    out = input * k\n    return out.sum(dim=1) + len(input)\n"
    disguised = ('def scale(x,k2):\n    """Scale x."""\n    # multiply\n    res = x*k2\n\n'
                 '    return res.sum(dim = 1) + len(x)   # total\n')
    assert fingerprint(plain) and fingerprint(plain).keys() == fingerprint(disguised).keys()
    assert fingerprint(plain).keys() != fingerprint(plain.replace("sum", "mean")).keys()   # attributes count
    # Winnowing keeps the rightmost smallest hash of every window, each position once.
    assert similarity._winnow([3, 1, 4, 1, 5, 9, 2, 6], 4) == [3, 6]

    alice, bob = solution(TAP_LOOP), disguised_solution()
    # The disguise is real: as text, the two solutions hardly share a line.
    body_lines = {line.strip() for line in TAP_LOOP.splitlines()}
    assert len(body_lines & {line.strip() for line in TAP_LOOP_DISGUISED.splitlines()}) <= 2

    matches = similar_pairs({"bob": bob, "alice": alice, "carol": solution(ZERO_INSERTION)}, template=TEMPLATE)
    assert [(m.a, m.b) for m in matches] == [("alice", "bob")]
    match = matches[0]
    assert match.score >= similarity.DEFAULT_THRESHOLD
    assert match.score > 0.85, match.score
    assert 0 < len(match.lines) <= similarity.MAX_LINES

    # Side by side, the lines point at the same statements in both: these pairs are all there...
    pairs = {(la, lb) for la, lb, _, _ in match.lines}
    for in_alice, in_bob in [("if weight.shape[0] != C_in:", "if kern.shape[0] != cin:"),               # moved up
                             ("for b in range(kW):", "for kx in range(kcols):"),
                             ("tap = torch.einsum(", "contrib = torch.einsum("),
                             ("full = input.new_zeros(", "acc = inp.new_zeros("),
                             ("out = full[:, :, pH:", "res = acc[:, :, pad_y:"),
                             ("out = out + bias.view(", "res = res + bias_.view(")]:
        assert (line_of(alice, in_alice), line_of(bob, in_bob)) in pairs, (in_alice, in_bob)
    # ...and every pair shown is one of these (statements that normalise alike may pair either way round).
    counterparts = [(["sH, sW = pair(", "pH, pW = pair("], ["st_y,  st_x = pair(", "pad_y,pad_x = pair("]),
                    (["N, C_in, H, W =", "_, C_out, kH, kW ="],
                     ["batch, cin, rows, cols =", "_, cout, krows, kcols ="]),
                    (["if weight.shape[0] != C_in:"], ["if kern.shape[0] != cin:"]),
                    (["raise ValueError(f\"weight expects"], ["raise ValueError(f\"bad number"]),
                    (["H_full = (H - 1)", "W_full = (W - 1)"], ["big_w = (cols - 1)", "big_h = (rows - 1)"]),
                    (["full = input.new_zeros("], ["acc = inp.new_zeros("]),
                    (["for a in range(kH):"], ["for ky in range(krows):"]),
                    (["for b in range(kW):"], ["for kx in range(kcols):"]),
                    (["tap = torch.einsum("], ["contrib = torch.einsum("]),
                    (["full[:, :, a:a +"], ["acc[:, :, ky:ky +", "kx:kx + (cols - 1)"]),
                    (["out = full[:, :, pH:"], ["res = acc[:, :, pad_y:"]),
                    (["if bias is not None:"], ["if bias_ is not None:"]),
                    (["out = out + bias.view("], ["res = res + bias_.view("]),
                    (["return out"], ["return res"])]
    allowed = {(line_of(alice, x), line_of(bob, y)) for xs, ys in counterparts for x in xs for y in ys}
    assert pairs <= allowed, sorted(pairs - allowed)
    for la, lb, text_a, text_b in match.lines:
        assert text_a == alice.split("\n")[la - 1].strip() and text_b == bob.split("\n")[lb - 1].strip()
    # No line of the template's own code is offered as evidence (the test cell, the helper).
    assert not any("torch.randn" in text_a or "isinstance" in text_a for _, _, text_a, _ in match.lines)


def test_independent_honest_solutions_are_not_reported():
    honest = {"alice": solution(TAP_LOOP), "carol": solution(ZERO_INSERTION), "dave": solution(FOLD),
              "gina": solution(PIXEL_LOOP)}
    assert similar_pairs(honest, template=TEMPLATE) == []
    copied = score(solution(TAP_LOOP), disguised_solution())
    for a, b in [("alice", "carol"), ("alice", "dave"), ("alice", "gina"), ("carol", "dave"), ("carol", "gina"),
                 ("dave", "gina")]:
        honest_score = score(honest[a], honest[b])
        assert honest_score < similarity.DEFAULT_THRESHOLD, (a, b, honest_score)
        assert copied - honest_score > 0.35, (a, b, copied, honest_score)
        if "gina" not in (a, b):   # two loops that stamp the kernel share more idioms than different methods do
            assert honest_score < 0.35, (a, b, honest_score)


def test_template_code_does_not_count():
    # A large released skeleton (helpers, plotting, checks) and two students who each wrote a few lines of their own.
    helpers = textwrap.dedent('''\

        def show_stamps(input, weight, stride=1, padding=0):
            """Draw each input pixel's stamp of the kernel on the output grid (given, not graded)."""
            import matplotlib.pyplot as plt
            sH, sW = pair(stride)
            H, W = input.shape[-2:]
            kH, kW = weight.shape[-2:]
            fig, axes = plt.subplots(H, W, figsize=(2 * W, 2 * H), squeeze=False)
            for i in range(H):
                for j in range(W):
                    canvas = torch.zeros((H - 1) * sH + kH, (W - 1) * sW + kW)
                    canvas[i * sH:i * sH + kH, j * sW:j * sW + kW] = input[0, 0, i, j] * weight[0, 0]
                    axes[i][j].imshow(canvas, cmap="coolwarm")
                    axes[i][j].set_title(f"pixel ({i}, {j})")
                    axes[i][j].axis("off")
            fig.tight_layout()
            return fig


        def check_against_torch(fn, trials=20, seed=0):
            """Compare fn with torch on random shapes; print the first difference."""
            gen = torch.Generator().manual_seed(seed)
            for trial in range(trials):
                n, c_in, c_out = 1 + trial % 3, 1 + trial % 4, 1 + trial % 5
                k, s, p = 1 + trial % 4, 1 + trial % 3, trial % 2
                x = torch.randn(n, c_in, 4, 5, generator=gen)
                w = torch.randn(c_in, c_out, k, k, generator=gen)
                want = F.conv_transpose2d(x, w, stride=s, padding=p)
                got = fn(x, w, stride=s, padding=p)
                if got.shape != want.shape or not torch.allclose(got, want, atol=1e-5):
                    print(f"trial {trial}: k={k} s={s} p={p}: shape {tuple(got.shape)} != {tuple(want.shape)}")
                    return False
            return True
        ''')
    template = TEMPLATE + helpers
    erin = solution('''\
    full = F.conv_transpose2d(input, weight, bias, stride=stride)
    return full[..., padding:full.shape[-2] - padding, padding:full.shape[-1] - padding]
''') + helpers
    frank = solution('''\
    out = torch.nn.functional.conv_transpose2d(input, weight, stride=stride, padding=padding)
    if bias is not None:
        out += bias.view(1, -1, 1, 1)
    return out
''') + helpers
    # Without the template, the shared skeleton alone makes them look like copies of each other...
    assert [(m.a, m.b) for m in similar_pairs({"erin": erin, "frank": frank})] == [("erin", "frank")]
    # ...with it, what is left is what they wrote, and that differs.
    assert similar_pairs({"erin": erin, "frank": frank}, template=template) == []
    assert score(erin, frank, template) < 0.3

    # A real copy inside the same large template is still found: the template hides only itself.
    found = similar_pairs({"alice": solution(TAP_LOOP) + helpers, "bob": disguised_solution() + helpers},
                          template=template)
    assert [(m.a, m.b) for m in found] == [("alice", "bob")]
    assert not any("imshow" in text_a or "manual_seed" in text_a for _, _, text_a, _ in found[0].lines)


STUB = TEMPLATE   # handed in untouched: `raise NotImplementedError()` in the body
# A half-written attempt, handed in as it was: unclosed brackets, a missing colon.
SYNTAX_ERROR = HEADER + '''\
    out = torch.zeros(input.shape[0], weight.shape[1]
    for i in range(input.shape[2]):
        for j in range(input.shape[3])
            out[:, :, i * stride, j * stride] += input[:, :, i, j] @ weight[
'''


def test_stubs_and_broken_sources_do_not_crash_or_match():
    with pytest.raises((tokenize.TokenError, SyntaxError)):   # the fallback tokenizer is what reads this one
        list(similarity._python_tokens(SYNTAX_ERROR))
    assert fingerprint(SYNTAX_ERROR)        # and it still has fingerprints
    for odd in ["", "   \n\n", "%timeit conv_transpose2d(x, w)\n!pip install torch\n", "\x00\ufeff'''", None]:
        assert isinstance(fingerprint(odd), dict)

    pass_stub = HEADER + "    pass  # TODO\n" + FOOTER
    other_pass_stub = HEADER + "    pass\n\n" + FOOTER
    sources = {"stub1": STUB, "stub2": STUB, "pass1": pass_stub, "pass2": other_pass_stub, "broken": SYNTAX_ERROR,
               "empty": "", "magic": "%matplotlib inline\n", "alice": solution(TAP_LOOP)}
    assert similar_pairs(sources, template=TEMPLATE) == []
    # Two `pass` stubs share the few k-grams where `pass` meets the template: compared at all, they would be
    # copies of each other. The minimum number of fingerprints is what stops it.
    assert [(m.a, m.b, m.score) for m in similar_pairs(sources, template=TEMPLATE, min_fingerprints=1)
            if m.a.startswith("pass")] == [("pass1", "pass2", 1.0)]

    # A copy that does not parse (the fallback tokenizer) is still compared like any other.
    broken_copy = solution(TAP_LOOP).replace("for a in range(kH):", "for a in range(kH)")
    with pytest.raises((tokenize.TokenError, SyntaxError)):
        list(similarity._python_tokens(broken_copy + "(\n"))
    found = similar_pairs({"alice": solution(TAP_LOOP), "zoe": broken_copy + "(\n"}, template=TEMPLATE)
    assert [(m.a, m.b) for m in found] == [("alice", "zoe")] and found[0].score > 0.9


def test_fingerprints_are_the_same_in_every_process():
    source = solution(TAP_LOOP)
    here = {str(h): lines for h, lines in fingerprint(source).items()}
    script = ("import json, sys\nfrom autograder.grading.similarity import fingerprint\n"
              "print(json.dumps({str(h): lines for h, lines in fingerprint(sys.stdin.read()).items()}))")
    for seed in ("1", "2"):
        env = {**os.environ, "PYTHONHASHSEED": seed}
        result = subprocess.run([sys.executable, "-c", script], input=source, capture_output=True, text=True,
                                env=env, cwd=paths.REPO, check=True)
        assert json.loads(result.stdout) == here, f"PYTHONHASHSEED={seed}"
    # The score too, and the order of the pairs.
    sources = {"alice": solution(TAP_LOOP), "bob": disguised_solution(), "carol": solution(ZERO_INSERTION)}
    assert similar_pairs(sources, template=TEMPLATE) == similar_pairs(dict(reversed(sources.items())),
                                                                        template=TEMPLATE)
