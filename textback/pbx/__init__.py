"""The PBX adapters: each turns one PBX's wire protocol into call outcomes and sends texts
through it.

``asterisk/`` (AMI, MessageSend, Originate, FastAGI) and ``freeswitch/`` (ESL, chat,
originate) each stand behind the same contract, so the daemon never asks which PBX it has.
The modules here are what both adapters share: the outcome record, what is known of a call
still ringing, and the stream contract. Nothing in this package imports from the outbound or
inbound services: a PBX adapter reports facts, it does not decide what to text.
"""
