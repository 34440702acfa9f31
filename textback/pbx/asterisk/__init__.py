"""Asterisk: the AMI parser and call tracker (sans-IO), the AMI client, MessageSend, Originate
and the FastAGI trigger."""
