"""Shared page code: pure plotly figure builders and small streamlit widget helpers."""
