"""Lifetime: trajectories, months until a target, and a constant trajectory equal to a plain evaluation."""
import json

import pytest

from dse.core.errors import DSEError
from dse.core.evaluation.lifetime import lifetime_table, months_until, parse_trajectory


def test_points_interpolate_and_hold_the_last_rate():
    t = parse_trajectory("0:0.01,12:0.05,24:0.12")
    assert t.rate(0) == pytest.approx(0.01) and t.rate(6) == pytest.approx(0.03) and t.rate(36) == pytest.approx(0.12)
    assert t.default_months() == (0.0, 12.0, 24.0)


def test_weibull_rises_from_f0_towards_fmax():
    t = parse_trajectory("weibull:fmax=0.3,eta=60,beta=2,f0=0.01")
    rates = [t.rate(m) for m in (0, 30, 60, 600)]
    assert rates[0] == pytest.approx(0.01) and rates == sorted(rates) and rates[-1] == pytest.approx(0.3)
    assert t.rate(60) == pytest.approx(0.01 + 0.29 * (1 - 1 / 2.718281828459045))  # at t = eta: 1 - 1/e
    assert parse_trajectory("constant:0.2").rate(99) == 0.2


@pytest.mark.parametrize("bad, match", [
    ("", "empty"), ("soon", "unknown fault-rate trajectory 'soon'"), ("0:0.1,12:0.05", "must not decrease"),
    ("12:0.1,0:0.2", "must increase"), ("0:1.2", "'1.2'"), ("0:x", "'x'"), ("weibull:eta=60", "needs fmax="),
    ("weibull:fmax=0.3,eta=0", "eta must be > 0"), ("weibull:fmax=0.3,eta=60,k=2", "'k=2'"),
    ("constant:-0.1", "'-0.1'"),
])
def test_bad_trajectories_are_one_line_errors(bad, match):
    with pytest.raises(DSEError, match=None) as e:
        parse_trajectory(bad)
    assert match in str(e.value) and "\n" not in str(e.value)


def test_months_until_interpolates_the_crossing():
    assert months_until([0, 12, 24], [90, 85, 75], 80) == pytest.approx(18.0)
    assert months_until([0, 12], [70, 60], 80) == 0.0
    assert months_until([0, 12], [90, 85], 80) is None


def test_lifetime_table_reports_yield_and_both_crossings():
    res = {0.1: {"n": 4, "mean": 90.0, "ci_low": 89, "ci_high": 91, "worst": 88.0, "accuracies": [88, 89, 91, 92]},
           0.2: {"n": 4, "mean": 70.0, "ci_low": 69, "ci_high": 71, "worst": 60.0, "accuracies": [60, 70, 70, 80]}}
    out = lifetime_table([0, 10], [0.1, 0.2], res, target=85, min_yield=0.5)
    assert [r["yield"] for r in out["rows"]] == [1.0, 0.0]
    assert out["months_to_target"] == pytest.approx(2.5) and out["months_to_min_yield"] == pytest.approx(5.0)


@pytest.fixture(scope="module")
def cli_setup(tmp_path_factory):
    from tests.fixtures import checkpoint_and_images

    return checkpoint_and_images(tmp_path_factory.mktemp("lifetime-cli"))


def run_json(capsys, *argv):
    from dse.cli import main

    assert main([*argv, "--json"]) == 0
    return json.loads(capsys.readouterr().out)


def test_constant_trajectory_equals_a_plain_evaluation(cli_setup, capsys):
    ckpt, data = cli_setup
    common = ["--data", data, "--instances", "3", "--bn", "chip", "--calib-images", "10", "--device", "cpu",
              "--fault-model", "clustered"]
    life = run_json(capsys, "lifetime", ckpt, "--trajectory", "constant:0.2", "--months", "0,12,24",
                    "--target", "5", *common)
    plain = run_json(capsys, "evaluate", ckpt, "--fault-rate", "0.2", *common)["results"][0]
    assert [r["fault_rate"] for r in life["rows"]] == [0.2, 0.2, 0.2]
    for r in life["rows"]:
        assert r["accuracies"] == plain["accuracies"] and r["mean"] == pytest.approx(plain["mean"])


def test_lifetime_cli_prints_the_months_until_the_target(cli_setup, capsys):
    from dse.cli import main

    ckpt, data = cli_setup
    with pytest.raises(SystemExit) as e:  # a target above 100% is refused by the parser
        main(["lifetime", ckpt, "--data", data, "--trajectory", "0:0,12:0.1", "--target", "101"])
    assert e.value.code == 2
    assert "percentage in [0, 100]" in capsys.readouterr().err
    assert main(["lifetime", ckpt, "--data", data, "--trajectory", "0:0,12:0.1,24:0.3", "--target", "100",
                 "--instances", "2", "--bn", "chip", "--calib-images", "10", "--device", "cpu",
                 "--min-yield", "50"]) == 0
    out = capsys.readouterr().out
    assert "mean accuracy falls below 100% after 0.0 months" in out and "yield at 100% falls below 50%" in out
