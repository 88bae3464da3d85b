"""Email through Resend: the one gateway for every call, the invoice email and customer
statements. (Templates live in crm/templates, shared with crm/reminders.)"""
