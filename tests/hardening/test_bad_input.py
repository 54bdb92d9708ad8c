"""Bad input, generated (hypothesis): negative, NaN, infinite, huge and non-numeric rates and widths, unknown
networks, fault rates >= 1, empty grids, on the command line and in sweep specs. Every case exits non-zero with
one stderr line that names the bad value, no traceback, and writes nothing."""
import contextlib
import math
import os
import tempfile
from pathlib import Path

import pytest
from hypothesis import assume, given, settings
from hypothesis import strategies as st

from dse.core.models import list_models
from tests.hardening.common import one_line_error

SETTINGS = settings(max_examples=25, deadline=None, database=None)  # small, untimed, nothing saved
PLAIN = st.characters(min_codepoint=32, max_codepoint=126, blacklist_characters=',"\\')  # no list separator


def _float(text: str):
    try:
        return float(text)
    except ValueError:
        return None


NOT_A_NUMBER = st.text(PLAIN, max_size=10).filter(lambda t: _float(t) is None)
NEGATIVE = st.floats(max_value=-1e-6, allow_nan=False, allow_infinity=False)
NOT_FINITE = st.sampled_from([math.nan, math.inf, -math.inf])
RATE_TOO_BIG = st.floats(min_value=1.0, allow_nan=False, allow_infinity=False)  # fault rate >= 1 included
WIDTH_TOO_BIG = st.floats(min_value=16.001, allow_nan=False, allow_infinity=False)
NETWORK = st.text(PLAIN, max_size=12).filter(lambda t: t.lower() not in list_models())


BAD_RATE = st.one_of(NOT_A_NUMBER, NEGATIVE.map(repr), NOT_FINITE.map(repr), RATE_TOO_BIG.map(repr),
                     st.sampled_from(["1e400", "-1e400", "Infinity"]))
BAD_WIDTH = st.one_of(NOT_A_NUMBER, NEGATIVE.map(repr), NOT_FINITE.map(repr), WIDTH_TOO_BIG.map(repr),
                      st.sampled_from(["0", "0.0", "1e400"]))


@contextlib.contextmanager
def empty_folder():
    """A fresh working folder; the caller checks it is still empty (no partial files)."""
    here = os.getcwd()
    with tempfile.TemporaryDirectory() as tmp:
        os.chdir(tmp)
        try:
            yield Path(tmp)
        finally:
            os.chdir(here)


def names(line: str, value: str) -> bool:
    """The line names the value as typed, or as the number or lower-case name it was read as."""
    forms = {value, repr(value), repr(value.lower())}
    if _float(value) is not None:
        forms.add(repr(_float(value)))
    return any(f in line for f in forms)


# (command line before the option, option) for each kind of value
RATE_OPTIONS = [(["train", "--out", "m.safetensors"], "--dropconnect"),
                (["train", "--out", "m.safetensors"], "--fault-rates"),
                (["evaluate", "m.safetensors"], "--fault-rate"),
                (["calibrate", "m.safetensors"], "--fault-rates")]
WIDTH_OPTIONS = [(["train", "--out", "m.safetensors"], "--width"), (["cost", "--network", "resnet20"], "--width")]
NETWORK_OPTIONS = [(["train", "--out", "m.safetensors"], "--network"), (["cost"], "--network")]


def check_cli(argv: list[str], bad: str) -> None:
    """`argv` fails with one line naming `bad` and leaves its working folder empty."""
    with empty_folder() as tmp:
        line = one_line_error(argv)
        assert not list(tmp.iterdir()), list(tmp.iterdir())
    assert names(line, bad), (bad, line)


@SETTINGS
@given(case=st.sampled_from(RATE_OPTIONS), value=BAD_RATE, listed=st.booleans())
def test_bad_rates_on_the_command_line(case, value, listed):
    base, option = case
    if listed and option == "--fault-rates":  # a bad rate inside a list is named alone
        assume(value.strip())  # "0.1, " is the valid list [0.1]
        check_cli([*base, f"{option}=0.1,{value}"], value.strip())
    else:
        check_cli([*base, f"{option}={value}"], value)


@SETTINGS
@given(case=st.sampled_from(WIDTH_OPTIONS), value=BAD_WIDTH)
def test_bad_widths_on_the_command_line(case, value):
    check_cli([*case[0], f"{case[1]}={value}"], value)


@SETTINGS
@given(case=st.sampled_from(NETWORK_OPTIONS), value=NETWORK)
def test_unknown_networks_on_the_command_line(case, value):
    check_cli([*case[0], f"{case[1]}={value}"], value)


# ================================================================================ sweep specs
def toml(value) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, float) and not math.isfinite(value):
        return "nan" if value != value else ("inf" if value > 0 else "-inf")
    if isinstance(value, str):
        return f'"{value}"'
    if isinstance(value, list):
        return "[" + ", ".join(toml(v) for v in value) + "]"
    if isinstance(value, dict):
        return "{ " + ", ".join(f"{k} = {toml(v)}" for k, v in value.items()) + " }"
    return repr(value)


VALID = {"fault_rates": [0.0, 0.1], "epochs": 1, "instances": 2, "network": "resnet20", "width": 1.0,
         "dropconnect": 0.3}
SPEC = """name = "prop"
fault_rates = {fault_rates}
[recipe]
epochs = {epochs}
[protocol]
instances = {instances}
[[grid]]
network = {network}
width = {width}
dropconnect = {dropconnect}
"""
KEY = {"fault_rates": "fault_rates", "epochs": "recipe.epochs", "instances": "protocol.instances",
       "network": "grid[1].network", "width": "grid[1].width", "dropconnect": "grid[1].dropconnect"}


def spec_text(**changes) -> str:
    return SPEC.format(**{k: toml(v) for k, v in {**VALID, **changes}.items()})


def sweep_error(text: str) -> str:
    """The one line `sweep SPEC --dry-run` answers a bad spec with; nothing but the spec is left behind."""
    with empty_folder() as tmp:
        (tmp / "spec.toml").write_text(text)
        line = one_line_error(["sweep", "spec.toml", "--dry-run", "--store", "s.sqlite"])
        assert [p.name for p in tmp.iterdir()] == ["spec.toml"]
    return line


WRONG_TYPE = st.one_of(st.text(PLAIN, max_size=8), st.booleans(), st.just({"a": 0.5}))
INT64 = st.integers(min_value=-(2 ** 63), max_value=2 ** 63 - 1)
BAD_SPEC_VALUE = {
    "fault_rates": st.one_of(NEGATIVE, NOT_FINITE, RATE_TOO_BIG, WRONG_TYPE),
    "dropconnect": st.one_of(NEGATIVE, NOT_FINITE, RATE_TOO_BIG, WRONG_TYPE),
    "width": st.one_of(NEGATIVE, NOT_FINITE, WIDTH_TOO_BIG, st.just(0.0), WRONG_TYPE),
    "network": st.one_of(NETWORK, st.floats(allow_nan=False), st.booleans()),
    "epochs": st.one_of(INT64.filter(lambda n: n < 1), st.floats(allow_nan=False), WRONG_TYPE),
    "instances": st.one_of(INT64.filter(lambda n: n < 1), st.floats(allow_nan=False), WRONG_TYPE),
}


@SETTINGS
@given(key=st.sampled_from(sorted(BAD_SPEC_VALUE)), data=st.data(), listed=st.booleans())
def test_bad_sweep_spec_values(key, data, listed):
    value = data.draw(BAD_SPEC_VALUE[key], label="value")
    written = value
    if listed and key in ("fault_rates", "width", "dropconnect"):  # a bad value among good ones
        written = [1.0 if key == "width" else 0.1, value]
    line = sweep_error(spec_text(**{key: written}))
    shown = value.lower() if key == "network" and isinstance(value, str) else value
    assert f"sweep spec {KEY[key]}" in line and repr(shown) in line, line


@pytest.mark.parametrize("text, key", [
    ('name = "prop"\ngrid = []\n', "grid"),  # an empty list of grid blocks
    ('name = "prop"\n', "grid"),  # no grid at all
    *[(spec_text(**{axis: []}), KEY[axis]) for axis in ("network", "width", "dropconnect", "fault_rates")],
], ids=["grid=[]", "no-grid", "network=[]", "width=[]", "dropconnect=[]", "fault_rates=[]"])
def test_empty_grids_and_axes(text, key):
    line = sweep_error(text)
    assert f"sweep spec {key}" in line and ("is empty" in line or "no grid" in line or "one or more" in line), line
