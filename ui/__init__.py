"""The dashboard's shared parts, beside dashboard.py and pages/: the session and role
gates, widgets, charts, the line editor, the send panel and the Settings page's calls out.

Rendering and input only: rules live in crm/, data access in db/.
"""
