-- textback: the table dialplan/freeswitch/cdr_sqlite.conf.xml writes (create it before
-- loading mod_cdr_sqlite, or the module creates its own default table instead).
CREATE TABLE IF NOT EXISTS cdr (
    uuid TEXT,
    direction TEXT,
    sofia_profile TEXT,
    context TEXT,
    sip_authorized TEXT,
    caller_id_number TEXT,
    caller_id_name TEXT,
    destination_number TEXT,
    start_uepoch TEXT,
    answer_uepoch TEXT,
    bridge_uepoch TEXT,
    end_uepoch TEXT,
    hangup_cause TEXT,
    originate_disposition TEXT,
    last_app TEXT,
    voicemail_message_len TEXT,
    originator TEXT,
    sip_hangup_disposition TEXT,
    cc_queue TEXT,
    cc_cancel_reason TEXT
);
