"""Tollgate gateway: the gRPC front door that validates, caches, routes to Triton and prices each call."""
