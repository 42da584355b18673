"""Span attribute names of Tollgate's cost and attribution, defined once.

SREs query traces by these names and finance reconciles against them; change them only with
a note in README.md.
"""

REQUEST_ID = "tollgate.request_id"
FEATURE = "tollgate.feature"
TENANT = "tollgate.tenant"
MODEL_NAME = "tollgate.model.name"
MODEL_VERSION = "tollgate.model.version"
MODEL_BUILD_ID = "tollgate.model.build_id"
TRAFFIC = "tollgate.traffic"  # serving | canary | shadow (costing.records.Traffic)
POOL = "tollgate.pool"
DEVICE = "tollgate.device"
LOCATION = "tollgate.location"
ROUTE_REASON = "tollgate.route.reason"
ROUTE_ATTEMPTS = "tollgate.route.attempts"
CACHE_HIT = "tollgate.cache.hit"
COST_TOTAL = "tollgate.cost.total"
COST_COMPUTE = "tollgate.cost.compute"
COST_GATEWAY = "tollgate.cost.gateway"
COST_CACHE = "tollgate.cost.cache"
COST_EGRESS = "tollgate.cost.egress"
COST_AVOIDED = "tollgate.cost.avoided"
COST_CURRENCY = "tollgate.cost.currency"
COMPUTE_NS = "tollgate.compute_ns"
PRICE_BOOK_VERSION = "tollgate.price_book.version"
