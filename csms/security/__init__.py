"""Charger security per the OCPP 1.6 Security Whitepaper: profiles 1-3, certificates, events.

Pure rules (``profiles``, ``backoff``, ``passwords``) have no I/O; ``handshake`` runs them
during the WebSocket upgrade, ``service`` drives the flows that need the command API.
"""
