"""Built-in dataset plugins, one module per dataset family (installed as ``harmonize.plugins``)."""
