"""The explorer page's Streamlit code, the only place in the package that imports streamlit: the sidebar that
builds a PageState (dse/view/state.py), the cached queries keyed by it, the header over every section, and one
module per section, each a `render(state)`. app.py sets the page up and routes to the open section."""
