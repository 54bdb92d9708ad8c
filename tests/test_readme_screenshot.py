"""The README's screenshot shows the page as the code draws it now (tests/screenshot.py)."""
from tests.screenshot import REFRESH, SCREENSHOT, page_digest, screenshot_digest


def test_the_readme_screenshot_is_of_the_current_page():
    assert SCREENSHOT.exists(), f"{SCREENSHOT.name} is missing: make it with `{REFRESH}`"
    assert "(docs/app.png)" in (SCREENSHOT.parents[1] / "README.md").read_text()
    assert screenshot_digest() == page_digest(), f"the page changed since docs/app.png was made: `{REFRESH}`"
