"""PBX event streams (Asterisk AMI, FreeSWITCH ESL) turned into per-call outcomes."""
