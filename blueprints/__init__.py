"""HTTP only: each blueprint parses a request, calls a service, and renders or serialises."""
