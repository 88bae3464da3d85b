"""The banner every page shows while CRM_SECRET_KEY cannot decrypt the stored secrets: what
is wrong and what to do, before the page itself (which renders with what it can read)."""

from __future__ import annotations

import streamlit as st

from crm.config.secrets_store import UNDECRYPTABLE, WHAT_TO_DO
from ui.widgets import settings


def warn_if_undecryptable() -> None:
    undecryptable = settings().undecryptable
    if undecryptable:
        st.error(f"{UNDECRYPTABLE} ({', '.join(sorted(undecryptable))}): {WHAT_TO_DO}. Until then, sending "
                 "and webhooks that need them are refused.")
