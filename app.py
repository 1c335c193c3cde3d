"""PID Memory Inspector dashboard: `streamlit run app.py [-- --dumps DIR]` (thin router over pages/)."""

from ui.nav import run_router

run_router()
