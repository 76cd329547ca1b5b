"""JobCreator adapters: bridges that hand jobs to existing execution engines."""
