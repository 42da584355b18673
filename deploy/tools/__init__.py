"""Tools for the production deployment: installing kubectl/promtool/prometheus, rendering and
checking the Kubernetes manifests."""
