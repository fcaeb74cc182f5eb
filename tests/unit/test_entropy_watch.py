"""The teacher-entropy collapse warning (srpo_verl.core.entropy_watch) on hand-computed metric streams."""

import pytest

from srpo_verl.core import entropy_watch as E
from srpo_verl.core.format_watch import FormatDropWatch
from srpo_verl.verl_ext.settings import RunConfigError, SRPOSettings


def step(entropy, tokens=10):
    return {E.ENTROPY_METRIC: entropy, E.TOKENS_METRIC: tokens}


def feed(watch, values, start=1):
    return [watch.update(s, step(v)) for s, v in enumerate(values, start)]


def test_rise_is_the_window_mean_over_its_lowest_and_warns_once_per_crossing():
    watch = E.TeacherEntropyWatch(threshold=2.0, window=2)
    out = feed(watch, [0.2, 0.1, 0.1, 0.3, 0.5, 0.1, 0.1, 0.9])
    rises = [m.get(E.RISE_METRIC) for m, _ in out]
    # window means: -, .15, .10, .20, .40, .30, .10, .50; lowest so far: .15, .10, .10, .10, .10, .10, .10
    assert rises == pytest.approx([None, 1.0, 1.0, 2.0, 4.0, 3.0, 1.0, 5.0])
    assert [m.get(E.WARN_METRIC) for m, _ in out] == [None, 0.0, 0.0, 0.0, 1.0, 1.0, 0.0, 1.0]
    lines = [(s, line) for s, (_, line) in enumerate(out, 1) if line]
    assert [s for s, _ in lines] == [5, 8]  # step 6 stays above: no second line; step 8 crosses again
    assert lines[0][1] == ("[srpo] WARNING: teacher entropy on SDPO tokens rose 4.0x, from 0.100 (the 2-step mean to "
                           "step 3) to 0.400 (to step 5), above srpo.teacher_entropy_warn=2: the self-teacher is "
                           "becoming unreliable (SDPO's collapse precursor)")


def test_steps_without_teacher_tokens_or_finite_entropy_are_skipped():
    watch = E.TeacherEntropyWatch(threshold=2.0, window=2)
    assert watch.update(1, step(0.1)) == ({}, None)
    assert watch.update(2, step(5.0, tokens=0)) == ({}, None)
    assert watch.update(3, step(float("nan"))) == ({}, None)
    assert watch.update(4, {"critic/score/mean": 0.5}) == ({}, None)
    metrics, line = watch.update(5, step(0.1))
    assert metrics == {E.RISE_METRIC: 1.0, E.WARN_METRIC: 0.0} and line is None


def test_off_still_measures_and_a_near_zero_baseline_is_floored():
    watch = E.TeacherEntropyWatch(threshold=None, window=1)
    feed(watch, [0.0])
    metrics, line = watch.update(2, step(0.004))
    assert metrics == {E.RISE_METRIC: pytest.approx(4.0), E.WARN_METRIC: 0.0} and line is None


def test_state_round_trip_continues_the_same_stream_and_another_window_is_refused():
    values = [0.2, 0.1, 0.1, 0.3, 0.5, 0.1]
    whole = E.TeacherEntropyWatch(2.0, window=2)
    expected = feed(whole, values)
    first = E.TeacherEntropyWatch(2.0, window=2)
    feed(first, values[:4])
    resumed = E.TeacherEntropyWatch(2.0, window=2)
    resumed.load_state_dict(first.state_dict())
    assert feed(resumed, values[4:], start=5) == expected[4:]
    with pytest.raises(ValueError, match="window 2, this run uses 3"):
        E.TeacherEntropyWatch(2.0, window=3).load_state_dict(first.state_dict())


def test_format_watch_state_round_trip():
    watch = FormatDropWatch(0.2)
    watch.observe("a", 3, 0.9)
    restored = FormatDropWatch(0.2)
    restored.load_state_dict(watch.state_dict())
    assert restored.best == {"a": (0.9, 3)}


@pytest.mark.parametrize("values, match", [
    ({"teacher_entropy_warn": 1.0}, r"srpo.teacher_entropy_warn=1.0 must be > 1"),
    ({"teacher_entropy_window": 0}, r"srpo.teacher_entropy_window=0 must be ≥ 1"),
])
def test_settings_refuse_bad_values(values, match):
    with pytest.raises(RunConfigError, match=match):
        SRPOSettings(**values)
    assert SRPOSettings(teacher_entropy_warn=None).teacher_entropy_warn is None
