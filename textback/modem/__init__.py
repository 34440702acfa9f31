"""GSM modem stack: PDU codec, sans-IO AT session, async driver, supervision, simulator."""
