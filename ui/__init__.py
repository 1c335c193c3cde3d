"""Streamlit helpers for the dashboard: data source + caches (data), URL state (state), sidebar, safe rendering
(render), charts and the page router (nav). The only Streamlit code besides app.py and pages/."""
