"""The CRM core shared by the dashboard and the webhook sidecar."""
