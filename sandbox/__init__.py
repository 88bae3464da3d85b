"""Offline emulators of the Stripe, Resend and Twilio HTTP APIs (the "sandbox").

The real `stripe`, `resend` and `twilio` client libraries run unchanged against it, over
real HTTP on loopback. Nothing here talks to the internet: it is used by the
tests and by the local demo when no real keys are configured.

Start it with ``python -m sandbox``; see ``sandbox/README.md``.
"""

BANNER = "SANDBOX: emulated Stripe, Resend and Twilio. No real money moves and no real email or text is sent."
