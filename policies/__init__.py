"""Gap rules: one module per lesson, each citing the review it comes from (see ``registry``)."""
