"""The A/B statistics (apps/deploy/abtest/stats.py) against scipy on fixed cases, against simulation
(1,000 seeded A/A experiments), on edge cases, and kept free of Django and scipy."""

from __future__ import annotations

import dataclasses
import math
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from scipy import stats as scipy_stats
from scipy.special import betaln, xlogy

from apps.deploy.abtest import stats
from apps.deploy.abtest.stats import MeanSample, ProportionSample, ScoreHistogram

ROOT = Path(__file__).resolve().parents[3]
PROPORTION_CASES = [
    ((1000, 100), (1000, 120)),
    ((20_000, 2_000), (20_000, 2_110)),
    ((500, 0), (480, 7)),
    ((37, 36), (41, 41)),
    ((1_000_000, 30_000), (1_000_000, 30_500)),
    ((3, 1), (10_000, 4_000)),
]


def finite_everywhere(value: object) -> bool:
    """No NaN or infinity anywhere in a result (dataclasses, dicts, tuples, numbers)."""
    if dataclasses.is_dataclass(value):
        return all(finite_everywhere(getattr(value, f.name)) for f in dataclasses.fields(value))
    if isinstance(value, dict):
        return all(finite_everywhere(v) for v in value.values())
    if isinstance(value, tuple | list):
        return all(finite_everywhere(v) for v in value)
    if isinstance(value, float):
        return math.isfinite(value)
    return True


# -- against scipy, fixed cases ------------------------------------------------------------------------------------


@pytest.mark.parametrize("conversions, units", [(0, 10), (5, 10), (10, 10), (37, 1000), (1, 1_000_000), (1, 1)])
@pytest.mark.parametrize("confidence", [0.95, 0.9])
def test_wilson_interval_matches_scipy(conversions, units, confidence):
    estimate = stats.rate_estimate(ProportionSample(units, conversions), confidence)
    expected = scipy_stats.binomtest(conversions, units).proportion_ci(confidence, method="wilson")
    assert estimate.value == conversions / units and estimate.n == units
    assert estimate.ci.low == pytest.approx(expected.low, abs=1e-12)
    assert estimate.ci.high == pytest.approx(expected.high, abs=1e-12)


def test_mean_interval_matches_scipy():
    sample = MeanSample(250, 12.5, 40.0)
    estimate = stats.mean_estimate(sample)
    low, high = scipy_stats.norm.interval(0.95, loc=12.5, scale=math.sqrt(40.0 / 250))
    assert (estimate.ci.low, estimate.ci.high) == (pytest.approx(low, rel=1e-12), pytest.approx(high, rel=1e-12))


@pytest.mark.parametrize("control, challenger", PROPORTION_CASES)
def test_two_proportion_z_test_matches_the_chi_square_of_the_2x2_table(control, challenger):
    (n1, x1), (n2, x2) = control, challenger
    result = stats.two_proportion_z_test(ProportionSample(n1, x1), ProportionSample(n2, x2))
    chi2, p_value, _, _ = scipy_stats.chi2_contingency([[x1, n1 - x1], [x2, n2 - x2]], correction=False)
    assert result.p_value == pytest.approx(p_value, rel=1e-9, abs=1e-300)
    assert result.statistic**2 == pytest.approx(chi2, rel=1e-9)
    assert math.copysign(1, result.statistic) == math.copysign(1, x2 / n2 - x1 / n1)
    assert result.p_value == pytest.approx(2 * scipy_stats.norm.sf(abs(result.statistic)), rel=1e-9)


@pytest.mark.parametrize(
    "sizes, shift, scales", [((50, 60), 0.5, (1.0, 3.0)), ((2, 3), 1.0, (1.0, 1.0)), ((5000, 300), 0.05, (2.0, 0.5))]
)
def test_welch_t_test_matches_scipy(sizes, shift, scales):
    rng = np.random.default_rng(7)
    control = rng.normal(10.0, scales[0], sizes[0])
    challenger = rng.normal(10.0 + shift, scales[1], sizes[1])
    expected = scipy_stats.ttest_ind(challenger, control, equal_var=False)
    from_values = stats.welch_t_test(MeanSample.from_values(control), MeanSample.from_values(challenger))
    from_sums = stats.welch_t_test(
        MeanSample.from_sums(len(control), control.sum(), (control**2).sum()),
        MeanSample.from_sums(len(challenger), challenger.sum(), (challenger**2).sum()),
    )
    for result in (from_values, from_sums):
        assert result.statistic == pytest.approx(expected.statistic, rel=1e-6)
        assert result.p_value == pytest.approx(expected.pvalue, rel=1e-6)
        assert result.df == pytest.approx(expected.df, rel=1e-6)


@pytest.mark.parametrize("t", [0.0, 0.3, 1.0, 1.96, 2.5, 4.0, 8.0, 30.0])
@pytest.mark.parametrize("df", [1, 2.5, 7, 30, 1_000, 1e5, 2e7])
def test_student_t_p_values_match_scipy(t, df):
    assert stats.student_t_two_sided(t, df) == pytest.approx(2 * scipy_stats.t.sf(t, df), rel=1e-6, abs=1e-300)


@pytest.mark.parametrize(
    "observed, weights",
    [
        ({1: 5000, 2: 5100}, {1: 50, 2: 50}),
        ({1: 9000, 2: 1100}, {1: 90, 2: 10}),
        ({1: 3300, 2: 3400, 3: 3250}, {1: 34, 2: 33, 3: 33}),
        ({1: 10_000, 2: 10_800}, {1: 50, 2: 50}),
        ({1: 12, 2: 0, 3: 1}, {1: 80, 2: 10, 3: 10}),
    ],
)
def test_srm_matches_scipy_chisquare(observed, weights):
    result = stats.srm_test(observed, weights)
    versions = sorted(weights)
    total = sum(observed.values())
    expected = scipy_stats.chisquare(
        [observed[v] for v in versions], [total * weights[v] / sum(weights.values()) for v in versions]
    )
    assert result.chi2 == pytest.approx(expected.statistic, rel=1e-12)
    assert result.p_value == pytest.approx(expected.pvalue, rel=1e-9, abs=1e-300)
    assert result.df == len(versions) - 1
    assert result.mismatch == (expected.pvalue < 0.001)


def test_srm_flags_a_split_off_by_four_percent_of_units():
    assert not stats.srm_test({1: 10_000, 2: 10_200}, {1: 50, 2: 50}).mismatch  # p ≈ 0.16
    flagged = stats.srm_test({1: 10_000, 2: 10_800}, {1: 50, 2: 50})
    assert flagged.mismatch and flagged.p_value < 1e-6


def exact_chance_to_beat(control: ProportionSample, challenger: ProportionSample) -> float:
    """P(p_challenger > p_control) for Beta(1 + x, 1 + n − x) posteriors, the exact closed-form sum
    (Evan Miller's), with scipy's log-beta."""
    a_control, b_control = 1 + control.conversions, 1 + control.units - control.conversions
    a_challenger, b_challenger = 1 + challenger.conversions, 1 + challenger.units - challenger.conversions
    i = np.arange(a_challenger)
    log_terms = (
        betaln(a_control + i, b_control + b_challenger)
        - np.log(b_challenger + i)
        - betaln(1 + i, b_challenger)
        - betaln(a_control, b_control)
    )
    return float(np.exp(log_terms).sum())


@pytest.mark.parametrize(
    "control, challenger",
    [
        *PROPORTION_CASES,
        ((0, 0), (0, 0)),
        ((10, 0), (10, 10)),
        ((10_000_000, 100), (100, 0)),  # a narrow posterior beside a wide one, both ways round
        ((100, 0), (10_000_000, 100)),
        ((200, 3), (10_000_000, 150_000)),
    ],
)
def test_chance_to_beat_control_matches_the_exact_beta_binomial_sum(control, challenger):
    control, challenger = ProportionSample(*control), ProportionSample(*challenger)
    chance = stats.chance_to_beat_control_proportion(control, challenger)
    assert chance == pytest.approx(exact_chance_to_beat(control, challenger), abs=1e-6)
    assert stats.chance_to_beat_control_proportion(control, challenger) == chance  # deterministic


def test_chance_to_beat_control_for_means_matches_scipy():
    control, challenger = MeanSample(400, 10.0, 9.0), MeanSample(500, 10.4, 16.0)
    expected = scipy_stats.norm.cdf(0.4 / math.sqrt(9.0 / 400 + 16.0 / 500))
    assert stats.chance_to_beat_control_mean(control, challenger) == pytest.approx(expected, rel=1e-12)


def test_relative_uplift_is_the_delta_method_interval():
    control, challenger = ProportionSample(20_000, 2_000), ProportionSample(20_000, 2_200)
    comparison = stats.compare_proportions(control, challenger)
    p_c, p_t = 0.1, 0.11
    variance = (p_t * (1 - p_t) / 20_000) / p_c**2 + p_t**2 * (p_c * (1 - p_c) / 20_000) / p_c**4
    half = scipy_stats.norm.ppf(0.975) * math.sqrt(variance)
    assert comparison.uplift == pytest.approx(0.1, rel=1e-12)
    assert comparison.uplift_ci.low == pytest.approx(0.1 - half, rel=1e-9)
    assert comparison.uplift_ci.high == pytest.approx(0.1 + half, rel=1e-9)
    means = stats.compare_means(MeanSample(1000, -4.0, 25.0), MeanSample(1000, -3.0, 25.0))
    assert means.uplift == pytest.approx(0.25)  # relative to |control|: higher is positive


def test_the_uplift_interval_covers_the_true_uplift_95_percent_of_the_time():
    rng = np.random.default_rng(2024)
    conversions = rng.binomial(20_000, [0.10, 0.11], size=(1000, 2))
    covered = 0
    for x_control, x_challenger in conversions:
        comparison = stats.compare_proportions(
            ProportionSample(20_000, int(x_control)), ProportionSample(20_000, int(x_challenger))
        )
        covered += comparison.uplift_ci.low <= 0.1 <= comparison.uplift_ci.high
    assert 0.935 <= covered / 1000 <= 0.965


# -- A/A simulations -----------------------------------------------------------------------------------------------


def test_aa_proportions_reject_five_percent_of_the_time():
    rng = np.random.default_rng(15)
    conversions = rng.binomial(2000, 0.1, size=(1000, 2))
    p_values = [
        stats.two_proportion_z_test(ProportionSample(2000, int(a)), ProportionSample(2000, int(b))).p_value
        for a, b in conversions
    ]
    assert 0.035 <= np.mean(np.array(p_values) < 0.05) <= 0.065


def test_aa_means_reject_five_percent_of_the_time():
    rng = np.random.default_rng(16)
    values = rng.lognormal(1.0, 0.8, size=(1000, 2, 300))  # skewed, like revenue
    means, variances = values.mean(axis=2), values.var(axis=2, ddof=1)
    p_values = [
        stats.welch_t_test(MeanSample(300, float(m[0]), float(v[0])), MeanSample(300, float(m[1]), float(v[1]))).p_value
        for m, v in zip(means, variances, strict=True)
    ]
    assert 0.035 <= np.mean(np.array(p_values) < 0.05) <= 0.065


def test_aa_allocations_fail_the_srm_check_at_its_nominal_rate():
    rng = np.random.default_rng(17)
    counts = rng.multinomial(10_000, [0.5, 0.3, 0.2], size=1000)
    p_values = np.array([stats.srm_test({1: a, 2: b, 3: c}, {1: 50, 2: 30, 3: 20}).p_value for a, b, c in counts])
    assert 0.035 <= np.mean(p_values < 0.05) <= 0.065
    assert np.mean(p_values < 0.001) <= 0.005


# -- online AUC and log loss ---------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def scored():
    """Scores and outcomes of a fair model: labels drawn with the scores as probabilities."""
    rng = np.random.default_rng(3)
    scores = rng.beta(2, 5, 20_000)
    labels = (rng.random(20_000) < scores).astype(int)
    return scores, labels


@pytest.mark.parametrize("bins", [100, 1000])
def test_binned_auc_is_the_mann_whitney_u_of_the_bins(scored, bins):
    scores, labels = scored
    quality = stats.model_quality(ScoreHistogram.from_scores(scores, labels, bins))
    binned = np.minimum((scores * bins).astype(int), bins - 1)
    u = scipy_stats.mannwhitneyu(binned[labels == 1], binned[labels == 0]).statistic
    assert quality.auc == pytest.approx(u / (labels.sum() * (1 - labels).sum()), rel=1e-12)
    exact = scipy_stats.mannwhitneyu(scores[labels == 1], scores[labels == 0]).statistic
    assert abs(quality.auc - exact / (labels.sum() * (1 - labels).sum())) < (0.005 if bins == 100 else 0.0005)
    assert (quality.positives, quality.negatives) == (labels.sum(), len(labels) - labels.sum())


def test_binned_log_loss_is_the_log_loss_of_the_bin_midpoints(scored):
    scores, labels = scored
    quality = stats.model_quality(ScoreHistogram.from_scores(scores, labels))
    midpoints = (np.minimum((scores * 1000).astype(int), 999) + 0.5) / 1000
    of_midpoints = -np.mean(xlogy(labels, midpoints) + xlogy(1 - labels, 1 - midpoints))
    exact = -np.mean(xlogy(labels, scores) + xlogy(1 - labels, 1 - scores))
    assert quality.log_loss == pytest.approx(of_midpoints, rel=1e-12)
    assert abs(quality.log_loss - exact) < 0.002


def test_histograms_merge_bin_by_bin(scored):
    scores, labels = scored
    days = [ScoreHistogram.from_scores(scores[i::3], labels[i::3]) for i in range(3)]
    merged = stats.merge_histograms(days)
    assert merged == ScoreHistogram.from_scores(scores, labels)
    assert stats.model_quality(merged) == stats.model_quality(ScoreHistogram.from_scores(scores, labels))
    assert stats.merge_histograms([]) == ScoreHistogram.empty()
    with pytest.raises(ValueError, match="same number of bins"):
        stats.merge_histograms([ScoreHistogram.empty(100), ScoreHistogram.empty(1000)])


def test_scores_outside_zero_one_fall_in_the_end_bins():
    assert [stats.score_bin(s, 100) for s in (-0.5, 0.0, 0.005, 0.999, 1.0, 7.0)] == [0, 0, 0, 99, 99, 99]
    with pytest.raises(ValueError, match="finite"):
        stats.score_bin(float("nan"))


# -- edge cases ----------------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "control, challenger",
    [((0, 0), (0, 0)), ((0, 0), (100, 3)), ((100, 0), (100, 0)), ((100, 100), (100, 100)), ((100, 0), (100, 5))],
    ids=["zero units", "control without units", "zero conversions", "all conversions", "control at zero"],
)
def test_proportion_edge_cases_give_defined_answers(control, challenger):
    control, challenger = ProportionSample(*control), ProportionSample(*challenger)
    comparison = stats.compare_proportions(control, challenger)
    assert finite_everywhere(comparison)
    assert 0.0 <= comparison.p_value <= 1.0 and 0.0 <= comparison.chance_to_beat <= 1.0
    assert finite_everywhere(stats.rate_estimate(control)) and finite_everywhere(stats.rate_estimate(challenger))
    if control.units == 0:
        assert stats.rate_estimate(control) == stats.Estimate(None, None, 0)
        assert comparison.p_value == 1.0 and comparison.statistic is None and comparison.uplift is None
    if control.conversions == 0:
        assert comparison.uplift is None and comparison.uplift_ci is None  # no relative change from zero
    if control == challenger:
        assert comparison.p_value == 1.0 and comparison.chance_to_beat == pytest.approx(0.5, abs=1e-6)


def test_rates_at_zero_and_one_hundred_percent_have_sound_intervals():
    none = stats.rate_estimate(ProportionSample(100, 0))
    every = stats.rate_estimate(ProportionSample(100, 100))
    assert none.value == 0.0 and none.ci.low == 0.0 and 0 < none.ci.high < 0.05
    assert every.value == 1.0 and every.ci.high == 1.0 and 0.95 < every.ci.low < 1


@pytest.mark.parametrize(
    "control, challenger",
    [((0, 0.0, 0.0), (0, 0.0, 0.0)), ((1, 5.0, 0.0), (1, 7.0, 0.0)), ((50, 2.0, 0.0), (50, 2.0, 0.0))],
    ids=["no units", "one unit each", "no variance"],
)
def test_mean_edge_cases_give_defined_answers(control, challenger):
    control, challenger = MeanSample(*control), MeanSample(*challenger)
    comparison = stats.compare_means(control, challenger)
    assert finite_everywhere(comparison) and finite_everywhere(stats.mean_estimate(control))
    assert comparison.p_value == 1.0 and comparison.statistic is None and comparison.chance_to_beat == 0.5


def test_means_without_variance_that_differ_are_certainly_different():
    result = stats.welch_t_test(MeanSample(50, 2.0, 0.0), MeanSample(50, 3.0, 0.0))
    assert result.statistic is None and result.p_value == 0.0
    assert stats.chance_to_beat_control_mean(MeanSample(50, 2.0, 0.0), MeanSample(50, 3.0, 0.0)) == 1.0


def test_srm_edge_cases():
    one = stats.srm_test({1: 1234}, {1: 100})
    assert (one.p_value, one.mismatch, one.df) == (1.0, False, 0)
    nobody = stats.srm_test({}, {1: 50, 2: 50})
    assert (nobody.p_value, nobody.mismatch) == (1.0, False) and finite_everywhere(nobody)
    stray = stats.srm_test({1: 500, 2: 480, 3: 4}, {1: 50, 2: 50})
    assert stray.mismatch and stray.unexpected == (3,) and stray.p_value == 0.0
    assert finite_everywhere(stray)


def test_histogram_edge_cases():
    assert stats.model_quality(ScoreHistogram.empty()) == stats.ModelQuality(None, None, 0, 0)
    only_positives = stats.model_quality(ScoreHistogram.from_scores([0.2, 0.9], [1, 1]))
    assert only_positives.auc is None and only_positives.log_loss is not None
    assert finite_everywhere(stats.model_quality(ScoreHistogram.from_scores([0.0, 1.0], [1, 0])))


def test_inputs_are_checked():
    with pytest.raises(ValueError):
        ProportionSample(10, 11)
    with pytest.raises(ValueError):
        ProportionSample(-1, 0)
    with pytest.raises(ValueError):
        MeanSample(3, float("nan"), 1.0)
    with pytest.raises(ValueError):
        MeanSample(3, 1.0, -1.0)
    with pytest.raises(ValueError):
        stats.rate_estimate(ProportionSample(10, 1), confidence=1.0)
    with pytest.raises(ValueError):
        ScoreHistogram((1, 2), (3,))


def test_the_module_imports_neither_django_nor_scipy():
    code = (
        "import sys, apps.deploy.abtest.stats; "
        "bad = [m for m in sys.modules if m.split('.')[0] in ('django', 'scipy')]; assert not bad, bad"
    )
    subprocess.run([sys.executable, "-c", code], check=True, cwd=ROOT)
