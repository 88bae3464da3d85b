"""Texts through Twilio: phone numbers (phone.py), the words of a text (body.py), Twilio's
error codes in words (errors.py), the one module for every Twilio call (gateway.py), and the
send-a-text workflow with its record made before the call (send.py)."""
