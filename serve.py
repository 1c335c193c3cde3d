"""Server entry of the dashboard: `streamlit run serve.py [-- --dumps DIR]` (what `make run` and `make share` run).

The same app as `streamlit run app.py` (serve.py hands app.py to Streamlit as its script), with the server
hardened before the first viewer connects: websocket requests that change server state are dropped for sessions
without access (ui.auth.install_server_guards), and `/_stcore/metrics` answers only `Authorization: Bearer
<PMI_TOKEN>` (ui.auth.PrivateEndpoints); the pages' libraries are imported then too (ui.nav.preload).
"""

import streamlit as st
from starlette.middleware import Middleware

from ui.auth import PrivateEndpoints, install_server_guards
from ui.nav import preload

install_server_guards()
preload()  # the pages' libraries and the query engine, before the first viewer

app = st.App("app.py", middleware=[Middleware(PrivateEndpoints)])
