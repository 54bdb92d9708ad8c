"""The README's screenshot of the app (docs/app.png) and the code it shows: the PNG carries a digest of the
page's code, so a test can tell when the page changed and the picture is stale."""
import hashlib
from pathlib import Path

from PIL import Image
from PIL.PngImagePlugin import PngInfo

ROOT = Path(__file__).resolve().parents[1]
SCREENSHOT = ROOT / "docs" / "app.png"
KEY = "rram-dse-page"
REFRESH = "python -m pytest tests/test_browser.py -k readme_screenshot --update-screenshot"


def page_digest() -> str:
    """sha256 (16 hex) of what draws the page: app.py and dse/view/ (its pages/ included)."""
    h = hashlib.sha256()
    for path in [ROOT / "app.py", *sorted((ROOT / "dse" / "view").rglob("*.py"))]:
        h.update(path.relative_to(ROOT).as_posix().encode() + b"\0" + path.read_bytes())
    return h.hexdigest()[:16]


def save_screenshot(src: Path, dst: Path) -> None:
    """Copy the PNG at `src` to `dst` (atomically) with the page digest in a text chunk."""
    info = PngInfo()
    info.add_text(KEY, page_digest())
    tmp = dst.with_suffix(".png.tmp")
    with Image.open(src) as im:
        im.save(tmp, format="PNG", pnginfo=info, optimize=True)
    tmp.replace(dst)


def screenshot_digest(path: Path = SCREENSHOT) -> str | None:
    with Image.open(path) as im:
        return im.text.get(KEY)
