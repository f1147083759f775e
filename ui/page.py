"""The first call of every page: title, icon, wide layout, the sidebar logo, the navigation and the chart settings.

The navigation is drawn here rather than by streamlit's pages/ listing, which names the first entry after the
entry file ("app"); URLs are still those of the classic pages/ directory, so deep links work on a fresh server.
"""

from __future__ import annotations

from pathlib import Path

import streamlit as st
from streamlit.errors import StreamlitPageNotFoundError
from streamlit.source_util import page_icon_and_name

from .charts import FORMAT_KEY, IMAGE_FORMATS

APP_NAME = "ResNet Explorer"
HOME_LABEL = "Home"
ROOT = Path(__file__).resolve().parent.parent
LOGO = ROOT / "assets" / "logo.svg"
PAGES_DIR = ROOT / "pages"


def page_files() -> list[Path]:
    """The pages in navigation order (their file names' numeric prefixes)."""
    return sorted(PAGES_DIR.glob("*.py"))


def nav_label(path: Path) -> str:
    """"4_Train.py" -> "Train", "2_Block_anatomy.py" -> "Block anatomy": the name streamlit gives its URL."""
    return page_icon_and_name(path)[1].replace("_", " ")


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
