"""Token attribution: Bayes-inverted log-probabilities, exact (brute force) or fast with bounds.

A sequence s is a prompt x (positions 0..n-1) followed by a response r (n..n+m-1); a causal
LM gives p(s_j | s_<j). For a position μ and a token v, s^v is s with s_μ replaced by v.

Definitions (ARCHITECTURE.md, "Token attribution"):
- log P(r | x) = Σ_{j ≥ n} log p(s_j | s_<j).
- Bayes' rule inverts the causal model into a two-sided conditional:
  P(s_μ = v | s_\\μ) ∝ p(v | s_<μ) · Π_{j>μ} p(s^v_j | s^v_<j).
- For a prompt position μ, with every sum over j taken on s^v:
  ℓ_den(v) = Σ_{μ ≤ j < n} log p(s^v_j | s^v_<j)  (the prior of v and the rest of the prompt),
  ℓ_num(v) = ℓ_den(v) + Σ_{j ≥ n} log p(s^v_j | s^v_<j)  (and the response).
  log P(x_μ = v | x_\\μ) = ℓ_den(v) − LSE_v ℓ_den;
  log P(x_μ = v | x_\\μ, r) = ℓ_num(v) − LSE_v ℓ_num;
  log P(r | x_\\μ) = LSE_v ℓ_num(v) − LSE_v ℓ_den(v)  (token μ marginalized away);
  LogA_μ = log P(r | x) − log P(r | x_\\μ) = log P(x_μ | x_\\μ, r) − log P(x_μ | x_\\μ);
  H_I(μ), H(μ): entropies of P(x_μ | x_\\μ) and P(x_μ | x_\\μ, r).
  At the last prompt position the den sum is the prior alone, so LSE ℓ_den = 0.
- Positions scored by default: 1..n-1 without special tokens. Position 0 has no left context,
  so a causal LM gives it no prior. Special tokens (BOS, EOS, chat-template markers such as
  <|im_start|>) are fixed by the template, not chosen by the writer: marginalizing one asks
  what the model does with a broken format, which says nothing about the content and would
  dominate the scale. `special_positions` finds them; pass `positions` to choose otherwise.

Brute force sums v over the whole vocabulary: |V| sequences per position (tests, benches).

Fast path: candidates C = the top-K of p(· | s_<μ), plus s_μ itself so that the observed
term is exact; ε = Σ_{v ∉ C} p(v | s_<μ). Every suffix factor is ≤ 1, so the excluded terms
of the den sum add E_den ∈ [0, ε], and those of the num sum add E_num ∈ [0, E_den] (the
response factors are ≤ 1 too). With D = LSE_C ℓ_den and N = LSE_C ℓ_num (N ≤ D):
- LSE ℓ_den ∈ [D, log(e^D + ε)] and LSE ℓ_num ∈ [N, log(e^N + ε)].
- log P(r | x_\\μ) = log((e^N + E_num) / (e^D + E_den)) grows with E_num and, as N ≤ D, with a
  common E_num = E_den: it is lowest at E_num = 0, E_den = ε and highest at E_num = E_den = ε,
  so it lies in [N − log(e^D + ε), log(e^N + ε) − log(e^D + ε)]. (Pairing the two LSE intervals
  independently, [N_low − D_high, N_high − D_low], is also valid but wider.)
- LogA lies in [log P(r|x) − high, log P(r|x) − low]; its width is log(1 + ε e^{−N}).
- log P(x_μ | x_\\μ) = ℓ_den(x_μ) − LSE ℓ_den lies in [ℓ_den(x_μ) − log(e^D + ε), ℓ_den(x_μ) − D].
The bound is certified but relative to e^N, the probability of the whole suffix after μ:
far from the end of a long sequence it is tiny and the interval wide, whatever K. K grows
until ε ≤ `epsilon`, up to `max_candidates` (16); then, while the LogA width exceeds `width`, up
to `certify_candidates` (256), but only when the prior's tail shows that this many can reach
the width: otherwise more candidates cost time without certifying anything. Entropies are
those of the candidate set, renormalized (they tend to the exact ones as ε → 0). ε is
computed as 1 − Σ_C p, so it is certified up to the backend's float precision (~1e-7 for
float32 models); it is exactly 0 only when C is the whole vocabulary (`vocab_size`).
On SmolLM2-135M the tails are heavy (K for ε ≤ 1e-3 is 79 to 27,000) and e^N tiny, so
certified widths stay in the hundreds of nats at any affordable K (bench/bench_attribution.py).

Estimate (the reported `loga`; `samples` > 0): the bound cannot be narrow, so the value is
estimated instead. The exact set E (the top-K and s_μ, as above) is summed exactly; the other
tokens are split into strata: `strata` bands of equal prior mass down the listed prior
(`PRIOR_LIST` tokens), and the unlisted rest. From each stratum h (mass M_h, size N_h) n_h
tokens are drawn uniformly without replacement, n_h ∝ M_h (the prior's own sampling,
stratified), at least 2. A stratum's sum Σ e^ℓ is estimated by the ratio estimator
M_h · Σ_drawn e^ℓ / Σ_drawn p(v | s_<μ), for ℓ_den and ℓ_num from the same draw: it is exact
when the whole stratum is drawn and consistent however p varies inside it. Then
log P(r | x_\\μ) = log Ẑ_num − log Ẑ_den, LogA = log P(r|x) − that. Its variance is the
delta-method (linearized) one, summed over strata with the finite-population correction
(1 − n_h/N_h); `loga_se` is its root, and `loga_ci` = LogA ± t·se with Student's t at the
Welch–Satterthwaite degrees of freedom, clipped to the certified interval. That interval is
statistical (95 % over the random draw; tests check the rate against brute force), the
certified one holds for sure; the drawn tokens are exact terms too, so they also narrow the
certified interval (ε counts only the tokens never evaluated).

Cost: each candidate v ≠ s_μ is one `score`d sequence sharing the prefix s_<μ; a backend
that reuses that prefix (llama.cpp's context, vLLM's prefix cache, `TransformersBackend`)
runs len(s) − μ tokens for it. `evaluations` counts those tokens plus the first full pass:
about n·(n/2 + m)·K for n prompt and m response tokens. The candidates of all positions go
to the backend together (512 sequences per call) so that it can share their common parts.
"""

from __future__ import annotations

import math
import re
import time
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field, replace

import numpy as np

from sciknow.serve.backends.base import Backend, ScoredSequence
from sciknow.serve.backends.decoding import entropy, log_softmax

EPSILON = 1e-3  # excluded prior mass per position
WIDTH = 0.05  # target width of the LogA interval, nats
MAX_CANDIDATES = 16  # candidates per position for ε
CERTIFY_CANDIDATES = 256  # candidates per position when they bring the width under WIDTH
SAMPLES = 384  # tail tokens drawn per position for the statistical estimate
STRATA = 16  # bands of equal prior mass they are drawn from
PRIOR_LIST = 8192  # prior tokens listed per position (the unlisted rest is one more stratum)
Z95 = 1.959964  # two-sided 95 % normal quantile
SCORE_CHUNK = 512  # candidate sequences per `score` call (bounds memory in brute force)
_MARKER_RE = re.compile(r"^<\|[^<>|]+\|>$|^</?s>$")


def logsumexp(values: np.ndarray) -> float:
    top = float(values.max())
    return top + math.log(float(np.exp(values - top).sum()))


def log_add(a: float, b: float) -> float:
    """log(e^a + b) for b ≥ 0, exact when e^a underflows."""
    return a if b <= 0 else max(a, math.log(b)) + math.log1p(math.exp(-abs(a - math.log(b))))


@dataclass
class PositionScore:
    """Attribution of one position; `(low, high)` pairs are certified bounds."""

    position: int
    token: int
    candidates: int  # tokens of the exact set (the top-K and the token itself)
    epsilon: float  # prior mass of the tokens not evaluated (neither exact nor drawn)
    log_z_den: tuple[float, float]  # LSE_v ℓ_den(v)
    log_z_num: tuple[float, float]  # LSE_v ℓ_num(v)
    log_p_marginal: float  # log P(r | x_\μ), candidate-set estimate
    log_p_marginal_bounds: tuple[float, float]
    loga: float
    loga_bounds: tuple[float, float]
    log_p_token: float  # log P(x_μ | x_\μ): the two-sided probability of the token
    log_p_token_bounds: tuple[float, float]
    h_i: float
    h: float
    sampled: int = 0  # tail tokens drawn for the statistical estimate (0: none)
    loga_se: float | None = None  # standard error of `loga` (0 when no tail is left)
    loga_ci: tuple[float, float] | None = None  # 95 % statistical interval, inside the bounds
    log_p_token_se: float | None = None

    @property
    def width(self) -> float:
        return self.loga_bounds[1] - self.loga_bounds[0]


@dataclass
class Attribution:
    """Scores of the chosen prompt positions of `prompt + response`."""

    prompt: list[int]
    response: list[int]
    positions: list[PositionScore]
    log_p_response: float
    evaluations: int
    seconds: float
    exact: bool = False  # every vocabulary token at every position (brute force)

    def at(self, position: int) -> PositionScore | None:
        return next((p for p in self.positions if p.position == position), None)


def marginalize(
    den: np.ndarray, num: np.ndarray, observed: int, epsilon: float, position: int, token: int
) -> PositionScore:
    """The scores of one position from ℓ_den and ℓ_num over a candidate set (see module doc).

    `observed` indexes the true token in the arrays; `epsilon` is the prior mass outside them.
    """
    d, n = logsumexp(den), logsumexp(num)
    d_high, n_high = log_add(d, epsilon), log_add(n, epsilon)
    log_p = float(num[observed] - den[observed])
    low, high = n - d_high, n_high - d_high
    return PositionScore(
        position=position,
        token=token,
        candidates=len(den),
        epsilon=epsilon,
        log_z_den=(d, d_high),
        log_z_num=(n, n_high),
        log_p_marginal=n - d,
        log_p_marginal_bounds=(low, high),
        loga=log_p - (n - d),
        loga_bounds=(log_p - high, log_p - low),
        log_p_token=float(den[observed]) - d,
        log_p_token_bounds=(float(den[observed]) - d_high, float(den[observed]) - d),
        h_i=float(entropy(log_softmax(den))),
        h=float(entropy(log_softmax(num))),
    )


def special_positions(backend: Backend, ids: Sequence[int]) -> set[int]:
    """Positions of special tokens: the backend's `special_ids()` when it has one
    (transformers), else tokens whose text reads back as one token only when special text is
    mapped (llama.cpp) or that look like a marker (`<|…|>`, `<s>`; vLLM's tokenizer always
    maps special text, so only the pattern works there)."""
    special = getattr(backend, "special_ids", None)
    if callable(special):
        found = set(special())
        return {i for i, t in enumerate(ids) if t in found}
    found = set()
    for token in set(ids):
        text = backend.detokenize([token])
        literal = backend.tokenize(text, special=False) != [token]
        if _MARKER_RE.match(text) or (literal and backend.tokenize(text, special=True) == [token]):
            found.add(token)
    return {i for i, t in enumerate(ids) if t in found}


@dataclass
class _Position:
    """One position being marginalized: its prior and the candidate terms evaluated so far."""

    ids: list[int]
    mu: int
    split: int  # ℓ_den sums log p over [mu, split), ℓ_num over [mu, len(ids))
    prior: list[tuple[int, float]]  # (token, log p(token | s_<mu)), best first
    terms: dict[int, tuple[float, float]] = field(default_factory=dict)  # v → (ℓ_den, ℓ_num)
    evaluations: int = 0
    priors: dict[int, float] = field(default_factory=dict)  # v → log p(v | s_<mu), scored
    strata: list[_Stratum] = field(default_factory=list)  # of the tokens left to sample

    def score(self, vocab: int | None) -> PositionScore:
        """Scores over the candidates so far; ε = 0 only when they are the whole vocabulary."""
        tokens = list(self.terms)
        den = np.array([self.terms[v][0] for v in tokens])
        num = np.array([self.terms[v][1] for v in tokens])
        prior = dict(self.prior)
        covered = math.fsum(math.exp(prior[v]) for v in tokens if v in prior)
        eps = 0.0 if len(tokens) == vocab else max(0.0, 1.0 - covered)
        token = self.ids[self.mu]
        return marginalize(den, num, tokens.index(token), eps, self.mu, token)

    def estimated(self, vocab: int | None) -> PositionScore:
        """`score`, with the point values replaced by the stratified estimate (exact terms of
        the tokens not drawn, the drawn ones standing for their strata) and its errors. The
        interval is clipped to the certified bounds; without `vocab` the unlisted tail
        cannot be drawn, so no interval is claimed."""
        result = self.score(vocab)
        drawn = [s.tokens[: s.taken].tolist() for s in self.strata]
        skip = {v for tokens in drawn for v in tokens}
        exact = np.array([t for v, t in self.terms.items() if v not in skip])
        samples = [
            (s.mass, len(s.tokens), self._array(tokens, self.priors), self._array(tokens))
            for s, tokens in zip(self.strata, drawn, strict=True)
        ]
        est = estimate_tail(exact, samples)
        den, num = self.terms[result.token]
        marginal = _clip(est.log_z_num - est.log_z_den, result.log_p_marginal_bounds)
        loga = num - den - marginal  # inside the bounds but for rounding, so clipped
        se, token_se = math.sqrt(est.var_ratio), math.sqrt(est.var_den)
        low, high = result.loga_bounds
        half = est.quantile() * se
        ci = (max(low, loga - half), min(high, loga + half))
        return replace(
            result,
            log_p_marginal=marginal,
            loga=loga,
            log_p_token=_clip(den - est.log_z_den, result.log_p_token_bounds),
            candidates=result.candidates - len(skip),
            sampled=len(skip),
            loga_se=se if vocab is not None else None,
            loga_ci=ci if vocab is not None else None,
            log_p_token_se=token_se if vocab is not None else None,
        )

    def _array(self, tokens: list[int], table: dict | None = None) -> np.ndarray:
        return np.array([(table or self.terms)[v] for v in tokens])


@dataclass
class _Stratum:
    """Tokens left out of the exact set, alike in prior: a random order of them (`tokens`),
    of which the first `taken` are drawn (uniformly, without replacement), and their prior
    mass, known exactly (a band of the listed prior, or the unlisted rest)."""

    tokens: np.ndarray
    mass: float
    taken: int = 0

    def draw(self, n: int) -> list[int]:
        start, self.taken = self.taken, min(len(self.tokens), self.taken + n)
        return self.tokens[start : self.taken].tolist()


@dataclass
class TailEstimate:
    """Stratified estimate of LSE ℓ_den and LSE ℓ_num over the whole vocabulary, with the
    (delta-method) variances of log Ẑ_den and of log Ẑ_num − log Ẑ_den, and the degrees of
    freedom of the latter (Welch–Satterthwaite over the strata; inf when nothing is drawn)."""

    log_z_den: float
    log_z_num: float
    var_den: float
    var_ratio: float
    dof: float = math.inf

    def quantile(self) -> float:
        """The two-sided 95 % Student-t quantile for `dof`."""
        return t95(self.dof)


_T95 = (12.706, 4.303, 3.182, 2.776, 2.571, 2.447, 2.365, 2.306, 2.262, 2.228)


def t95(dof: float) -> float:
    """Two-sided 95 % quantile of Student's t: a table to 10 degrees of freedom (rounded down,
    so wider), the Cornish-Fisher series beyond (error < 1e-3)."""
    if dof < 1:
        return _T95[0]
    if dof < 11:
        return _T95[int(dof) - 1]
    z = Z95
    return (
        z
        + (z**3 + z) / (4 * dof)
        + (5 * z**5 + 16 * z**3 + 3 * z) / (96 * dof**2)
        + (3 * z**7 + 19 * z**5 + 17 * z**3 - 15 * z) / (384 * dof**3)
    )


def estimate_tail(
    exact: np.ndarray, samples: Sequence[tuple[float, int, np.ndarray, np.ndarray]]
) -> TailEstimate:
    """Exact terms plus a ratio estimate of each stratum of the rest (module doc, "Estimate").

    `exact` holds rows (ℓ_den, ℓ_num) of the exact set; each sample is (stratum mass M,
    stratum size N, log priors (n,), rows (n, 2)) of n tokens drawn uniformly without
    replacement. The stratum's sum of e^ℓ is M · Σ e^ℓ / Σ π over the drawn tokens: exact when
    n = N, and unbiased as n grows whatever the spread of π inside the stratum.
    """
    rows = [exact, *(terms for *_, terms in samples if len(terms))]
    shift = np.max(np.concatenate(rows), axis=0)  # per column: e^(ℓ − shift) ≤ 1
    z = np.exp(exact - shift).sum(axis=0)
    parts = []
    for mass, size, log_prior, terms in samples:
        if not len(terms):
            continue
        prior, y = np.exp(log_prior), np.exp(terms - shift)
        ratio = y.sum(axis=0) / prior.sum()
        z = z + mass * ratio
        n = len(terms)
        if 1 < n < size:
            factor = mass**2 * (1 - n / size) / (n * prior.mean() ** 2)
            parts.append((factor, n, y - prior[:, None] * ratio))
    den, ratio = [], []
    for factor, n, residual in parts:
        rel = residual / z
        den.append(factor * float(np.var(rel[:, 0], ddof=1)))
        ratio.append((factor * float(np.var(rel[:, 1] - rel[:, 0], ddof=1)), n))
    var_ratio = math.fsum(v for v, _ in ratio)
    spread = math.fsum(v * v / (n - 1) for v, n in ratio)
    dof = var_ratio**2 / spread if spread > 0 else math.inf
    log_z = np.log(z) + shift
    return TailEstimate(float(log_z[0]), float(log_z[1]), math.fsum(den), var_ratio, dof)


def make_strata(
    prior: Sequence[tuple[int, float]],
    exact: Iterable[int],
    exact_mass: float,
    vocab: int | None,
    bands: int,
    rng: np.random.Generator,
) -> list[_Stratum]:
    """The tokens outside `exact` in strata: `bands` bands of equal mass over the listed
    `prior` (best first), then the unlisted rest of a known vocabulary as one more stratum
    (its mass: 1 − the listed mass − `exact_mass`, the prior mass of exact tokens that are not
    listed). Without `vocab` the unlisted rest cannot be drawn and is left out."""
    exact = set(exact)
    listed = [(v, lp) for v, lp in prior if v not in exact]
    strata = []
    if listed:
        tokens = np.array([v for v, _ in listed])
        mass = np.exp([lp for _, lp in listed])
        cum = np.cumsum(mass)
        edges = np.searchsorted(cum, cum[-1] * np.arange(1, bands) / bands) + 1
        for part, weights in zip(np.split(tokens, edges), np.split(mass, edges), strict=True):
            if len(part):
                strata.append(_Stratum(rng.permutation(part), math.fsum(weights)))
    if vocab is not None and len(prior) < vocab:
        known = exact | {v for v, _ in prior}
        rest = np.array([v for v in range(vocab) if v not in known], dtype=np.int64)
        mass = 1.0 - math.fsum(math.exp(lp) for _, lp in prior) - exact_mass
        if len(rest) and mass > 0:
            strata.append(_Stratum(rng.permutation(rest), mass))
    return strata


def allocate(strata: Sequence[_Stratum], samples: int) -> list[int]:
    """Draw about `samples` more tokens, each stratum's share in proportion to its mass (the
    prior's own sampling, stratified), at least 2 from a stratum (for its variance)."""
    total = math.fsum(s.mass for s in strata)
    drawn = []
    for stratum in strata:
        want = max(2, round(samples * stratum.mass / total)) if total > 0 else 2
        drawn += stratum.draw(want)
    return drawn


def _clip(value: float, bounds: tuple[float, float]) -> float:
    return min(max(value, bounds[0]), bounds[1])


def _split_sums(scored: ScoredSequence, mu: int, split: int) -> tuple[float, float]:
    """(Σ log p over [mu, split), Σ over [mu, end)) of one scored sequence."""
    lps = scored.logprobs
    den = math.fsum(lp for lp in lps[mu:split] if lp is not None)
    return den, den + math.fsum(lp for lp in lps[split:] if lp is not None)


def _top_for(prior: list[tuple[int, float]], tail_at_most: float, vocab: int | None) -> int:
    """Smallest K whose top-K leaves at most `tail_at_most` prior mass (len(prior) + 1 if none);
    a prior listing the whole vocabulary leaves nothing after its last token."""
    tails = 1.0 - np.cumsum(np.exp([lp for _, lp in prior]))
    if len(prior) == vocab:
        tails[-1] = 0.0
    reached = np.flatnonzero(tails <= tail_at_most)
    return int(reached[0]) + 1 if reached.size else len(prior) + 1


Progress = Callable[[int], None]  # called with the token evaluations just done


def _evaluate(
    backend: Backend,
    wanted: Iterable[tuple[_Position, Iterable[int]]],
    progress: Progress | None = None,
) -> None:
    """Score the candidates of one or more positions, `SCORE_CHUNK` sequences per call: a call
    holding several positions lets the backend share their common parts."""
    jobs = [(p, v) for p, tokens in wanted for v in dict.fromkeys(tokens) if v not in p.terms]
    for start in range(0, len(jobs), SCORE_CHUNK):
        chunk = jobs[start : start + SCORE_CHUNK]
        seqs = [[*pos.ids[: pos.mu], v, *pos.ids[pos.mu + 1 :]] for pos, v in chunk]
        for (pos, v), scored in zip(chunk, backend.score(seqs), strict=True):
            pos.terms[v] = _split_sums(scored, pos.mu, pos.split)
            pos.priors[v] = scored.logprobs[pos.mu] or 0.0
            pos.evaluations += len(pos.ids) - pos.mu
        if progress:
            progress(sum(len(pos.ids) - pos.mu for pos, _ in chunk))


def _first(pos: _Position, epsilon: float, k_max: int, vocab: int | None) -> list[int]:
    """The top-K of the prior leaving at most `epsilon` out, K ≤ `k_max`."""
    k = min(_top_for(pos.prior, epsilon, vocab), k_max, len(pos.prior))
    return [v for v, _ in pos.prior[:k]]


def _certify(backend: Backend, pos: _Position, width: float, vocab: int | None) -> PositionScore:
    """Add candidates while the LogA width exceeds `width`, if the known prior (`pos.prior`,
    the most candidates allowed) shows that its candidates can bring it under."""
    result = pos.score(vocab)
    while result.width > width:
        needed = _top_for(pos.prior, math.expm1(width) * math.exp(result.log_z_num[0]), vocab)
        more = [v for v, _ in pos.prior[:needed] if v not in pos.terms]
        if needed > len(pos.prior) or not more:
            break
        _evaluate(backend, [(pos, more)])
        result = pos.score(vocab)
    return result


def vocab_size(backend: Backend) -> int | None:
    """The vocabulary size when the backend states it (`vocab_size`), else `None`: then a
    candidate set is never taken for the whole vocabulary, and ε keeps its rounding error."""
    return getattr(backend, "vocab_size", None)


def attribute(
    backend: Backend,
    prompt: Sequence[int],
    response: Sequence[int],
    positions: Iterable[int] | None = None,
    epsilon: float = EPSILON,
    width: float = WIDTH,
    max_candidates: int = MAX_CANDIDATES,
    certify_candidates: int = CERTIFY_CANDIDATES,
    samples: int = SAMPLES,
    strata: int = STRATA,
    seed: int = 0,
) -> Attribution:
    """LogA, its bounds and the entropies of prompt positions, by the fast path.

    `positions` defaults to 1..n-1 without special tokens. `epsilon=0` with `max_candidates`
    at the vocabulary size gives the brute-force numbers (up to summation order). `samples`
    tail tokens per position (drawn from `strata` prior bands, seeded) make the statistical
    estimate; 0 keeps the candidate-set values and no interval.
    """
    sampling = Sampling(samples, strata, seed) if samples > 0 else None
    k = max(max_candidates, certify_candidates, PRIOR_LIST if sampling else 0)
    vocab = vocab_size(backend)

    def first(pos: _Position) -> list[int]:
        return _first(pos, epsilon, max_candidates, vocab)

    k = min(k, backend.max_top_k)
    return _attribute(backend, prompt, response, positions, k, first, width, vocab, sampling)


def brute_force(
    backend: Backend,
    prompt: Sequence[int],
    response: Sequence[int],
    positions: Iterable[int] | None = None,
    vocab: int | None = None,
    progress: Progress | None = None,
) -> Attribution:
    """Reference attribution: every token of the vocabulary at every position (`--exact`).

    `vocab` defaults to the backend's `vocab_size`, else `max_top_k` (the vocabulary of the
    embedded and transformers backends; not of vLLM, whose `max_top_k` is a logprob cap).
    Positions run one after another, each over its cached prefix; `progress` hears of every
    `SCORE_CHUNK` sequences scored.
    """
    size = vocab or vocab_size(backend) or backend.max_top_k
    return _attribute(
        backend,
        prompt,
        response,
        positions,
        0,
        lambda _: range(size),
        math.inf,
        size,
        progress=progress,
    )


def exact_cost(
    backend: Backend,
    prompt: Sequence[int],
    response: Sequence[int],
    positions: Iterable[int],
    probe: int = 64,
) -> tuple[int, float]:
    """Token evaluations of `brute_force` over `positions`, and the seconds they should take,
    from timing `probe` candidates at the middle position (after a warm-up call)."""
    ids, chosen = [*prompt, *response], sorted(positions)
    size = vocab_size(backend) or backend.max_top_k
    evaluations = len(ids) + (size - 1) * sum(len(ids) - mu for mu in chosen)
    if not chosen:
        return evaluations, 0.0
    mu = chosen[len(chosen) // 2]
    seqs = [[*ids[:mu], v, *ids[mu + 1 :]] for v in range(min(probe, size))]
    backend.score(seqs[:1])
    started = time.perf_counter()
    backend.score(seqs)
    rate = len(seqs) * (len(ids) - mu) / (time.perf_counter() - started)
    return evaluations, evaluations / rate


def candidate_terms(
    backend: Backend,
    prompt: Sequence[int],
    response: Sequence[int],
    mu: int,
    tokens: Iterable[int],
    progress: Progress | None = None,
) -> np.ndarray:
    """(ℓ_den, ℓ_num) of each of `tokens` at prompt position `mu`, one row per token: the raw
    terms that brute force sums (benchmarks keep them to study estimators offline)."""
    ids = [*prompt, *response]
    pos = _Position(ids, mu, len(prompt), [])
    tokens = list(tokens)
    _evaluate(backend, [(pos, tokens)], progress)
    return np.array([pos.terms[v] for v in tokens])


def _attribute(
    backend: Backend,
    prompt: Sequence[int],
    response: Sequence[int],
    positions: Iterable[int] | None,
    top_k: int,
    first: Callable[[_Position], Iterable[int]],
    width: float,
    vocab: int | None,
    sampling: Sampling | None = None,
    progress: Progress | None = None,
) -> Attribution:
    """Score the `first` candidates of every position together, certify each, then draw the
    tail samples of all positions together."""
    started = time.perf_counter()
    ids, n = [*prompt, *response], len(prompt)
    base = backend.score([ids], top_k=top_k)[0]
    chosen = _default_positions(backend, prompt) if positions is None else sorted(set(positions))
    if any(not 1 <= mu < n for mu in chosen):
        raise ValueError(f"positions {chosen} are not all prompt positions in 1..{n - 1}")
    found = []
    for mu in chosen:
        found.append(_Position(ids, mu, n, base.top[mu]))
        found[-1].terms[ids[mu]] = _split_sums(base, mu, n)
        found[-1].priors[ids[mu]] = base.logprobs[mu] or 0.0
    _evaluate(backend, [(pos, first(pos)) for pos in found], progress)
    scores = [_certify(backend, pos, width, vocab) for pos in found]
    if sampling:
        _sample(backend, found, sampling, vocab, progress)
        scores = [pos.estimated(vocab) for pos in found]
    log_p = math.fsum(lp for lp in base.logprobs[n:] if lp is not None)
    evaluations = len(ids) + sum(pos.evaluations for pos in found)
    seconds = time.perf_counter() - started
    exact = vocab is not None and all(s.candidates == vocab for s in scores)
    return Attribution(list(prompt), list(response), scores, log_p, evaluations, seconds, exact)


@dataclass
class Sampling:
    """How the excluded tail is estimated: `samples` tokens drawn per position from `strata`
    bands of the prior, with a seeded generator (the same inputs give the same numbers)."""

    samples: int = SAMPLES
    strata: int = STRATA
    seed: int = 0


def _sample(
    backend: Backend,
    found: Sequence[_Position],
    sampling: Sampling,
    vocab: int | None,
    progress: Progress | None = None,
) -> None:
    """Stratify the tokens each position left out and score a draw from every stratum (the
    generator of a position is seeded by (seed, position): its draw does not depend on which
    other positions are scored)."""
    for pos in found:
        rng = np.random.default_rng([sampling.seed, pos.mu])
        listed = {v for v, _ in pos.prior}
        unlisted = math.fsum(math.exp(pos.priors[v]) for v in pos.terms if v not in listed)
        pos.strata = make_strata(pos.prior, pos.terms, unlisted, vocab, sampling.strata, rng)
    _evaluate(backend, [(pos, allocate(pos.strata, sampling.samples)) for pos in found], progress)


def _default_positions(backend: Backend, prompt: Sequence[int]) -> list[int]:
    special = special_positions(backend, prompt)
    return [mu for mu in range(1, len(prompt)) if mu not in special]


def two_sided(
    backend: Backend,
    ids: Sequence[int],
    positions: Iterable[int],
    right_context: int | None = None,
    epsilon: float = 1e-2,
    max_candidates: int = 8,
    base: ScoredSequence | None = None,
    samples: int = 0,
    strata: int = 4,
) -> tuple[list[PositionScore], int]:
    """P(s_μ | s_\\μ) for any positions of `ids` (response tokens, for flags), with bounds.

    With `right_context=w` only the next w tokens stand on the right: P(s_μ | s_<μ, s_μ+1..μ+w),
    far cheaper for early positions of a long answer and exact for the last w. Returns the
    scores (read `log_p_token`, `log_p_token_bounds`, `h_i`) and the token evaluations.
    `base` is `ids` already scored with `top_k ≥ max_candidates` (scored here otherwise).
    `samples` > 0 adds the statistical estimate of `log_p_token` (`log_p_token_se`) from
    tokens drawn outside the top-K: `strata` bands of the prior as far as `base` lists it
    (score it with a larger `top_k` for that), and the unlisted rest.
    """
    ids = list(ids)
    k = min(max_candidates, backend.max_top_k)
    base = base or backend.score([ids], top_k=k)[0]
    vocab = vocab_size(backend)
    found = []
    for mu in positions:
        end = len(ids) if right_context is None else min(len(ids), mu + 1 + right_context)
        found.append(_Position(ids[:end], mu, end, base.top[mu]))
        observed, _ = _split_sums(base, mu, end)
        found[-1].terms[ids[mu]] = (observed, observed)  # no response part: ℓ_num = ℓ_den
        found[-1].priors[ids[mu]] = base.logprobs[mu] or 0.0
    _evaluate(backend, [(pos, _first(pos, epsilon, k, vocab)) for pos in found])
    if samples > 0:
        _sample(backend, found, Sampling(samples, strata), vocab)
        scores = [pos.estimated(vocab) for pos in found]
    else:
        scores = [pos.score(vocab) for pos in found]
    return scores, sum(pos.evaluations for pos in found)
