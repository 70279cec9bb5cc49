"""Integrations with other libraries; each needs its extra (``pip install recostate[fastapi]``)."""
