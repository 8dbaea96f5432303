"""The plugin contract: hookspecs, DatasetPlugin, descriptors, YAML layouts, catalogue, discovery."""
