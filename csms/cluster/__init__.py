"""Cluster mode: several ``csms serve`` nodes behind a load balancer, routed through NATS.

PostgreSQL stays the one record of state; NATS carries what crosses nodes. Each concern
is a port with an in-process implementation (one ``csms serve``, exactly as before) and a
NATS one, chosen once in ``csms.app`` so that callers never know which they have:

- commands   ``routing.ClusterLocator``: the local socket, else a request to the owner
- events     ``events.NatsEventBus``: a JetStream stream, one durable consumer per service
- presence   ``ownership.ClusterPresence``: epochs in PostgreSQL, fencing, replacement
- caches     ``invalidation.NatsInvalidations``: "forget this" broadcast to the others
- membership ``membership.Membership``: node heartbeats; a silent node's chargers lapse

Subjects (``subjects.py``): ``csms.cmd.<charger>``, ``csms.owner.<charger>``,
``csms.events.<EventType>``, ``csms.invalidate.<topic>``.
"""
