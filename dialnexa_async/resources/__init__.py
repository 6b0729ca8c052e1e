"""One class per API resource; each method is one endpoint, kept thin."""
