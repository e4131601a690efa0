"""What the Snakefile needs from the package: the validated configuration (schema, profile, defaults, and the
checks that span sections). Top of the import order: it may use any layer."""

from __future__ import annotations

from .config import ConfigError, validate
from .search.space import check_enqueue

__all__ = ["ConfigError", "load_config"]


def load_config(config: dict) -> dict:
    """The workflow's config, validated: profile selected, defaults filled, enqueued architectures inside their
    search space. Raises ConfigError naming the key."""
    cfg = validate(config)
    check_enqueue(cfg)
    return cfg
