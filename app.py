"""Home: what ResNet Explorer is, and a link to every page in pages/ (classic pages-directory mode).

No st.navigation anywhere: streamlit serves pages/ itself, so every page's URL works as the first
request to a fresh server. A link such as /?model=resnet50 opens the Architecture page on that model.
"""

from __future__ import annotations

import streamlit as st

from ui.page import page_descriptions, page_files, setup_page
from ui.widgets import preset_family_job

ARCHITECTURE_PAGE = "pages/1_Architecture.py"
CLI_EXAMPLES = """\
python -m resnet_core list                           # every preset with its params and mult-adds
python -m resnet_core summary resnet50 --block basic  # one model's stage table, any field overridden"""

setup_page()
if "model" in st.query_params:
    st.switch_page(ARCHITECTURE_PAGE, query_params=st.query_params.to_dict())
preset_family_job()  # warms the summary cache of every preset in the background (at idle priority), once per server
st.title("ResNet Explorer")
st.write(
    "See and test residual networks. Pick a depth and a block type and the network is built at once: "
    "parameters, mult-adds, memory and shapes are computed from the model itself, and every curve on the "
    "training pages comes from a real run. Where a textbook claim and the measurement disagree, the "
    "measurement is shown.")
with st.container(border=True):
    st.markdown("**Where to start.** Open **Architecture**, pick a preset (resnet20 is He et al.'s smallest "
                "CIFAR net, quick to train on a laptop) and read its stage table; then press **Train this model** "
                "there and watch the curves. **Degradation** and **Signal flow** then show what the skip "
                "connections change.")
    st.page_link(ARCHITECTURE_PAGE, label="Start with Architecture", icon=":material/play_arrow:")

pages = page_files()
descriptions = page_descriptions(tuple((str(path), path.stat().st_mtime) for path in pages))
columns = st.columns(3)
for i, path in enumerate(pages):
    with columns[i % 3].container(border=True):
        st.page_link(f"pages/{path.name}", icon=":material/arrow_forward:")
        st.caption(descriptions[str(path)] or " ")

st.subheader("The same numbers from the command line")
st.code(CLI_EXAMPLES, language="bash")
st.caption("A link reproduces a view: the Architecture page keeps its settings in the URL, "
           "e.g. `?model=resnet50&block=basic&batch=32`.")
