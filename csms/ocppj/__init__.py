"""The version-neutral OCPP-J core: framing, call/result correlation, the outgoing queue.

``framing`` turns text into typed messages and back; ``outgoing`` is the pure rule of
OCPP-J 1.6 §4.1.1 (one CALL of ours in flight per charger, the rest waiting in order);
``calls`` is the thin asyncio shell that applies it to one socket; ``holdable`` bounds a
frame's nesting before it is parsed and finds values PostgreSQL could not store. The 1.6 handlers
(``csms.ocpp16``) sit on top, and a 2.0.1 set can sit beside them.
"""
