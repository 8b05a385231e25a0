"""Interactive maps of the plan: Folium pages whose scripts, styles and fonts are all served locally."""
