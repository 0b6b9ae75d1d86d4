"""A second domain, unlike the shop, built only on the public API (docs/domain.md)."""
