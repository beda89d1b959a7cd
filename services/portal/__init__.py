"""The web portal (issue 18): the holder's self-service page and the reviewer console, over the gRPC APIs."""
