"""tensorflow-datasets builders, one per dataset; importing one registers it."""
