"""The first call of every page: title, icon, wide layout and the sidebar logo, the same on every page."""

from __future__ import annotations

from pathlib import Path

import streamlit as st

APP_NAME = "ResNet Explorer"
LOGO = Path(__file__).resolve().parent.parent / "assets" / "logo.svg"


def setup_page(title: str | None = None) -> None:
    """`st.set_page_config` for a page called `title` (None: Home), and the logo above the navigation."""
    st.set_page_config(page_title=f"{title} · {APP_NAME}" if title else APP_NAME, page_icon="🧱", layout="wide")
    st.logo(str(LOGO), size="large")
