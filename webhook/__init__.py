"""The webhook sidecar: the only process on the public internet. Routes and workers only;
the rules it applies live in crm/ and in the SQL functions db/ calls."""
