"""The holder's self-service pages, opened from the signed link in every warning, notice and reminder."""

from services.portal.holder.routes import setup_holder

__all__ = ["setup_holder"]
