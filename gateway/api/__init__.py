"""Generated from protos/tollgate/v1 by `make protos`; do not edit."""
