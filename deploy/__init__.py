"""Deployment: local process orchestration (deploy.local) and production manifests."""
