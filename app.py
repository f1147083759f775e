"""Home page (placeholder until the app issue lands)."""

import streamlit as st

st.set_page_config(page_title="ResNet Explorer", page_icon="🧱", layout="wide")
st.title("ResNet Explorer")
st.write("See and test residual networks: every number is computed from the model or measured on a real run.")
