"""Reply → conversation: what a customer's text asks for (keywords, opt-out), the handler that
stores and acts on it, staff notification and relay, and callback on reply."""
