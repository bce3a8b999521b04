"""Dev only, never deployed: a stand-in for the Azure Functions host (Core Tools cannot be
installed here) and the runner of the local stack. The product never imports this package."""
