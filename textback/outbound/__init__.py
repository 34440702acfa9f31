"""Missed call → text: the call record, policy, templates and hours, the durable outbox,
the dispatcher that hands texts to senders, and follow-ups."""
