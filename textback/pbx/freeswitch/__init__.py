"""FreeSWITCH: the Event Socket parser and call tracker (sans-IO), the ESL client, the chat
API for texts and inbound MESSAGE events, and originate for callbacks."""
