"""The reviewer console: sign-in, the review queue, a case's file, claim and decide, over verification's gRPC API
called with the signed-in reviewer's own certificate."""

from services.portal.reviewer.routes import setup_reviewer

__all__ = ["setup_reviewer"]
