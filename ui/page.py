"""The first call of every page: title, icon, wide layout, the sidebar logo, the navigation and the chart settings;
and the pages' descriptions Home lists.

The navigation is drawn here rather than by streamlit's pages/ listing, which names the first entry after the
entry file ("app"); URLs are still those of the classic pages/ directory, so deep links work on a fresh server.
"""

from __future__ import annotations

import ast
import re
from pathlib import Path

import streamlit as st
from streamlit.errors import StreamlitPageNotFoundError

from .charts import FORMAT_KEY, IMAGE_FORMATS

APP_NAME = "ResNet Explorer"
HOME_LABEL = "Home"
ROOT = Path(__file__).resolve().parent.parent
LOGO = ROOT / "assets" / "logo.svg"
PAGES_DIR = ROOT / "pages"
# Classic pages/ mode names a page's URL after its file: the leading number and separators go, runs of spaces and
# underscores become one underscore ("2_Block_anatomy.py" -> /Block_anatomy), as streamlit's pages/ docs describe.
PAGE_FILE = re.compile(r"[0-9]*[_ -]*(?P<name>.*)\.py")


def page_files() -> list[Path]:
    """The pages in navigation order (their file names' numeric prefixes)."""
    return sorted(PAGES_DIR.glob("*.py"))


def page_name(path: Path) -> str:
    """"4_Train.py" -> "Train", "2_Block_anatomy.py" -> "Block_anatomy": the URL path streamlit serves it at."""
    return re.sub(r"[_ ]+", "_", PAGE_FILE.fullmatch(path.name)["name"]).strip()


def nav_label(path: Path) -> str:
    """"2_Block_anatomy.py" -> "Block anatomy": the page's name as the navigation shows it."""
    return page_name(path).replace("_", " ")


def navigation() -> list[tuple[str, str]]:
    """(page path for st.page_link, label) for Home and every page."""
    return [("app.py", HOME_LABEL), *((f"pages/{p.name}", nav_label(p)) for p in page_files())]


def setup_page(title: str | None = None) -> None:
    """`st.set_page_config` for a page called `title` (None: Home), the logo, the navigation, the chart format."""
    st.set_page_config(page_title=f"{title} · {APP_NAME}" if title else APP_NAME, page_icon="🧱", layout="wide")
    st.logo(str(LOGO), size="large")
    with st.sidebar:
        try:
            for path, label in navigation():
                st.page_link(path, label=label, width="stretch")
        except StreamlitPageNotFoundError:  # a page run as the entry file itself (as AppTest does) has no app around it
            pass
        st.divider()
        if FORMAT_KEY not in st.session_state:
            st.session_state[FORMAT_KEY] = IMAGE_FORMATS[0]
        st.segmented_control("Chart downloads", IMAGE_FORMATS, key=FORMAT_KEY, format_func=str.upper,
                             help="The camera icon above every chart saves it in this format, with its title "
                                  "and legend. Every table downloads as CSV from its own toolbar.")


@st.cache_data(max_entries=4, show_spinner=False)
def page_descriptions(stamp: tuple[tuple[str, float], ...]) -> dict[str, str]:
    """Each page file's description by its path, parsed once per server (and again when a page file changes; `stamp`
    is every page's path and modification time). Not on every view: Home is every user's first page, and CPython
    3.11's AST constructor counts its recursion per interpreter, not per thread, so ast.parse in two script threads
    at once can raise SystemError ("AST constructor recursion depth mismatch", cpython gh-106905); one cache entry
    means one parse at a time."""
    return {path: page_description(Path(path)) for path, _ in stamp}


def page_description(path: Path) -> str:
    """The first line of the page's module docstring, minus its "Title:" prefix."""
    try:
        doc = ast.get_docstring(ast.parse(path.read_text(encoding="utf-8"))) or ""
    except (SyntaxError, UnicodeDecodeError):
        doc = ""
    first = doc.strip().splitlines()[0] if doc.strip() else ""
    text = first.split(":", 1)[1].strip() if ":" in first else first
    return text[:1].upper() + text[1:]
