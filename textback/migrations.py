"""The store's schema as numbered steps; ``PRAGMA user_version`` says which ran.

Append a new step to ``MIGRATIONS`` to change the schema; never edit a step that shipped
(databases in the field already ran it). Each step runs in one transaction together with
the version bump, so a crash mid-migration leaves the previous version intact.

Room for the conversation features (issue 6) is here from version 1: inbound messages,
conversations with a short code for staff replies, opt-out history and follow-ups, so that
they add behaviour, not a rewrite of the tables.
"""

from __future__ import annotations

V1 = """
CREATE TABLE calls (
    id             INTEGER PRIMARY KEY,
    call_id        TEXT NOT NULL UNIQUE,
    pbx            TEXT NOT NULL,
    direction      TEXT NOT NULL,
    caller         TEXT,
    caller_name    TEXT,
    withheld       INTEGER NOT NULL,
    did            TEXT,
    callee         TEXT,
    connected      INTEGER NOT NULL DEFAULT 0,
    verdict        TEXT NOT NULL,
    reason         TEXT NOT NULL,
    voicemail_left INTEGER NOT NULL DEFAULT 0,
    ring_s         REAL NOT NULL DEFAULT 0,
    started_at     REAL,
    ended_at       REAL,
    decided_at     REAL NOT NULL,
    decision       TEXT,          -- NULL (not yet) | text | skip | cancelled
    skip_reason    TEXT,
    skip_detail    TEXT,
    decision_at    REAL,
    record         TEXT NOT NULL  -- the outcome's replay JSON, extras included
);
CREATE INDEX calls_caller ON calls (caller, decided_at);
CREATE INDEX calls_callee ON calls (callee, decided_at);
CREATE INDEX calls_decided ON calls (decided_at);

-- The inbound call is the consent record for the text-back (issue 6: TCPA).
CREATE TABLE consent (
    call_id TEXT PRIMARY KEY REFERENCES calls (call_id),
    number  TEXT NOT NULL,
    did     TEXT,
    at      REAL NOT NULL
);
CREATE INDEX consent_number ON consent (number);

CREATE TABLE conversations (
    id               INTEGER PRIMARY KEY,
    number           TEXT NOT NULL,
    did              TEXT NOT NULL,
    code             TEXT NOT NULL UNIQUE,   -- short code staff quote to reply
    state            TEXT NOT NULL DEFAULT 'open',  -- open | closed
    call_id          TEXT,                   -- the missed call that opened it, if any
    opened_at        REAL NOT NULL,
    last_activity_at REAL NOT NULL
);
CREATE UNIQUE INDEX conversations_open ON conversations (number, did) WHERE state = 'open';

CREATE TABLE outbox (
    id            INTEGER PRIMARY KEY,
    call_id       TEXT,                  -- NULL for texts not caused by a call (confirmations)
    kind          TEXT NOT NULL,         -- textback | followup-2 | optout-confirm | relay ...
    number        TEXT NOT NULL,
    did           TEXT,
    body          TEXT NOT NULL,
    template      TEXT,
    encoding      TEXT,
    parts         INTEGER,
    senders       TEXT NOT NULL,         -- JSON list, in order of preference
    sender_index  INTEGER NOT NULL DEFAULT 0,
    state         TEXT NOT NULL,         -- queued sending sent delivered failed unconfirmed
                                         -- cancelled skipped
    attempts      INTEGER NOT NULL DEFAULT 0,
    not_before    REAL NOT NULL,
    last_error    TEXT,
    cancel_reason TEXT,
    created_at    REAL NOT NULL,
    updated_at    REAL NOT NULL,
    claimed_at    REAL,
    sent_at       REAL,
    sent_by       TEXT,
    message_id    INTEGER REFERENCES messages (id),
    UNIQUE (call_id, kind)
);
CREATE INDEX outbox_due ON outbox (state, not_before);
CREATE INDEX outbox_number ON outbox (number, created_at);

CREATE TABLE messages (
    id              INTEGER PRIMARY KEY,
    conversation_id INTEGER REFERENCES conversations (id),
    direction       TEXT NOT NULL,       -- out | in
    number          TEXT NOT NULL,       -- the customer's number
    did             TEXT,
    body            TEXT NOT NULL,
    parts           INTEGER NOT NULL DEFAULT 1,
    encoding        TEXT,
    status          TEXT NOT NULL,       -- out: sent | sent-unconfirmed | delivered | failed
                                         -- in: received
    sender          TEXT,                -- modem:a | sip
    call_id         TEXT,
    outbox_id       INTEGER,
    created_at      REAL NOT NULL,
    sent_at         REAL,
    delivered_at    REAL
);
CREATE INDEX messages_number ON messages (number, created_at);

CREATE TABLE message_parts (
    message_id INTEGER NOT NULL REFERENCES messages (id),
    part_no    INTEGER NOT NULL,         -- 1-based
    mr         INTEGER,                  -- TP-MR from +CMGS
    status     TEXT NOT NULL,            -- sent | delivered | failed
    status_at  REAL,
    PRIMARY KEY (message_id, part_no)
);
CREATE INDEX message_parts_mr ON message_parts (mr, status);

CREATE TABLE opt_outs (
    number            TEXT PRIMARY KEY,
    opted_out         INTEGER NOT NULL,  -- 1 now opted out, 0 opted back in
    at                REAL NOT NULL,
    source_message_id INTEGER,
    source            TEXT NOT NULL      -- keyword | cli | staff
);

CREATE TABLE opt_events (
    id         INTEGER PRIMARY KEY,
    number     TEXT NOT NULL,
    action     TEXT NOT NULL,            -- optout | optin
    at         REAL NOT NULL,
    message_id INTEGER,
    source     TEXT NOT NULL,
    note       TEXT
);
CREATE INDEX opt_events_number ON opt_events (number, at);

CREATE TABLE follow_ups (
    id              INTEGER PRIMARY KEY,
    call_id         TEXT NOT NULL,
    touch           INTEGER NOT NULL,    -- 1 = the first text, 2, 3 ...
    number          TEXT NOT NULL,
    did             TEXT,
    due_at          REAL NOT NULL,
    state           TEXT NOT NULL,       -- scheduled | queued | cancelled | done
    cancel_reason   TEXT,
    outbox_id       INTEGER,
    UNIQUE (call_id, touch)
);
CREATE INDEX follow_ups_due ON follow_ups (state, due_at);
"""

# Abuse caps and the report (issue 6): the caller's country on each call (per-country hourly
# caps count texts by it; rows from before this version have NULL and count for no country),
# burst pauses (one row per paused prefix, which is also the staff alert to send), and the
# indexes the burst count, the hourly caps and `textback report` need to stay fast on 100k calls.
V2 = """
ALTER TABLE calls ADD COLUMN country TEXT;
CREATE INDEX calls_missed_caller ON calls (caller, decided_at)
    WHERE verdict = 'missed' AND direction = 'inbound';
CREATE INDEX outbox_created ON outbox (created_at);

CREATE TABLE burst_pauses (
    id         INTEGER PRIMARY KEY,
    prefix     TEXT NOT NULL,            -- '+' and prefix_digits digits
    did        TEXT,                     -- the DID the burst was called on
    call_id    TEXT NOT NULL,            -- the call that completed the burst
    calls      INTEGER NOT NULL,         -- missed calls from the prefix in the window
    window_s   REAL NOT NULL,
    started_at REAL NOT NULL,
    until_at   REAL NOT NULL,
    detail     TEXT NOT NULL,
    alerted_at REAL                      -- NULL: staff not yet alerted
);
CREATE INDEX burst_pauses_until ON burst_pauses (until_at);
CREATE INDEX burst_pauses_unalerted ON burst_pauses (id) WHERE alerted_at IS NULL;

CREATE INDEX messages_call ON messages (call_id, direction);
CREATE INDEX messages_conversation ON messages (conversation_id, created_at);
CREATE INDEX opt_events_at ON opt_events (at);
"""

# Calls in progress that must survive a restart of the daemon (docs/asterisk.md, "Across a
# restart"): what the tracker knew when it classified each inbound call (trunk channel,
# caller, DID, start, evidence so far) as the JSON of a ``CallStart``. A row goes away in the
# same transaction that records the call's verdict (the trigger), so ``record_outcome``
# needs no change and no verdict can leave its open call behind.
V3 = """
CREATE TABLE open_calls (
    call_id    TEXT PRIMARY KEY,
    pbx        TEXT NOT NULL,
    started_at REAL NOT NULL,
    updated_at REAL NOT NULL,
    record     TEXT NOT NULL          -- CallStart.to_record() as JSON
);
CREATE TRIGGER open_calls_decided AFTER INSERT ON calls
BEGIN
    DELETE FROM open_calls WHERE call_id = NEW.call_id;
END;
"""

# Callback on reply (issue 6): one row per callback the PBX was asked to place, with what
# became of it (staff answered or not).
V4 = """
CREATE TABLE callbacks (
    id           INTEGER PRIMARY KEY,
    number       TEXT NOT NULL,            -- the customer
    did          TEXT NOT NULL,
    message_id   INTEGER,                  -- the reply that asked for it
    pbx          TEXT NOT NULL,            -- asterisk | freeswitch
    ref          TEXT,                     -- AMI ActionID / ESL Job-UUID or channel uuid
    state        TEXT NOT NULL,            -- requested | answered | failed
    detail       TEXT,
    requested_at REAL NOT NULL,
    finished_at  REAL
);
CREATE INDEX callbacks_number ON callbacks (number, requested_at);
"""

# Narrower crash window: ``handed_at`` is set the moment a sender commits the text to the
# channel (the Ctrl-Z after the first PDU, the MessageSend/chat action). A row found in
# ``sending`` after a crash without it never reached the modem and is simply queued again.
V5 = """
ALTER TABLE outbox ADD COLUMN handed_at REAL;
"""

# Staff e-mail is durable (textback/staff_mail.py): written here before the MTA is tried,
# retried with backoff, given up (state failed) after a day. (No schema change, noted here:
# callbacks.state may now also be 'unknown', a result lost in a restart, callback.py.)
V6 = """
CREATE TABLE staff_mail (
    id              INTEGER PRIMARY KEY,
    recipients      TEXT NOT NULL,          -- one address per line
    subject         TEXT NOT NULL,
    body            TEXT NOT NULL,
    created_at      REAL NOT NULL,
    state           TEXT NOT NULL DEFAULT 'queued'
                    CHECK (state IN ('queued', 'sent', 'failed')),
    attempts        INTEGER NOT NULL DEFAULT 0,
    next_attempt_at REAL NOT NULL,
    last_error      TEXT,
    sent_at         REAL
);
CREATE INDEX staff_mail_due ON staff_mail (state, next_attempt_at);
"""

# The inbound journal (textback/inbound/journal.py, its only writer; issue 12 finding 3):
# every PDU a modem received, raw, committed before anything decodes it and before its SIM
# slot is freed. Decoding, reassembly and handling run from here. ``state``: new (not yet
# handled; multipart parts stay new until their text is delivered), stored (the message is
# in ``messages`` - same transaction - but acting on it may not have finished), done,
# undecodable (kept raw with ``error``, shown to staff as a flagged message), failed (the
# handler raised something other than a store outage: kept with ``error``), ignored (not a
# text: a status report or a stored SUBMIT).
V7 = """
CREATE TABLE inbound_pdus (
    id           INTEGER PRIMARY KEY,
    modem        TEXT NOT NULL,            -- the sender name, e.g. modem:a
    storage      TEXT,                     -- SIM/ME storage ("SM"); NULL for +CMT
    slot         INTEGER,                  -- its index there; NULL for +CMT
    pdu          TEXT NOT NULL,            -- hex, SMSC octets first, as the modem gave it
    received_at  REAL NOT NULL,
    state        TEXT NOT NULL DEFAULT 'new'
                 CHECK (state IN ('new', 'stored', 'done', 'undecodable', 'failed',
                                  'ignored')),
    error        TEXT,
    message_id   INTEGER REFERENCES messages (id),
    processed_at REAL
);
CREATE INDEX inbound_pdus_open ON inbound_pdus (id) WHERE state IN ('new', 'stored');
CREATE INDEX inbound_pdus_slot ON inbound_pdus (modem, storage, slot, pdu);
"""

# Possible opt-outs (issue 14, textback/inbound/possible_optout.py): a reply no rule can settle
# ("you need to stop", a lone 🛑) waits here for staff to decide. While a row for a number
# is pending, nothing automatic may be texted to it. The trigger is that gate, in the one
# place every path goes through (first texts, follow-ups, HELP answers, confirmations): a
# row queued for a held number is cancelled as it is inserted. Exempt: texts a person wrote
# ('relay', which staff.py blocks while a review is pending anyway), the opt-out
# confirmation, and the single clarification text the module queues itself.
V8 = """
CREATE TABLE optout_reviews (
    id           INTEGER PRIMARY KEY,
    number       TEXT NOT NULL,
    did          TEXT NOT NULL,
    message_id   INTEGER NOT NULL REFERENCES messages (id),
    code         TEXT,                   -- the conversation code staff answer with
    state        TEXT NOT NULL DEFAULT 'pending'
                 CHECK (state IN ('pending', 'optout', 'not-optout')),
    created_at   REAL NOT NULL,
    clarified_at REAL,                   -- when the one clarification text was queued
    decided_at   REAL,
    decided_by   TEXT                    -- a staff number, or 'customer' (a later STOP)
);
CREATE INDEX optout_reviews_number ON optout_reviews (number, state);
CREATE INDEX optout_reviews_code ON optout_reviews (code, state);
CREATE TRIGGER optout_review_hold AFTER INSERT ON outbox
WHEN NEW.state = 'queued'
     AND NEW.kind NOT IN ('relay', 'optout-confirm', 'possible-optout-clarify')
     AND EXISTS (SELECT 1 FROM optout_reviews WHERE number = NEW.number AND state = 'pending')
BEGIN
    UPDATE outbox SET state = 'cancelled', cancel_reason = 'possible-optout'
     WHERE id = NEW.id;
    UPDATE calls SET decision = 'cancelled', skip_reason = 'possible-optout',
           decision_at = NEW.created_at
     WHERE NEW.kind = 'textback' AND call_id = NEW.call_id AND decision IS NULL;
END;
"""

# Webhooks (issue 15, textback/webhooks.py, its only writer): one row per event and hook,
# written right after the fact it reports and delivered from here by the delivery loop,
# with backoff, across restarts. ``fact`` names what the event is about ("message:42",
# "call:<id>"): the unique key makes a second emit of the same fact (a resumed reply, a
# redecided call) a no-op. ``hook`` is a digest of the hook's URL, never the URL, which may
# hold a token; ``body`` is the exact JSON sent, signed afresh at each attempt.
V9 = """
CREATE TABLE webhook_deliveries (
    id              INTEGER PRIMARY KEY,
    event_id        TEXT NOT NULL,          -- the body's "id": every attempt, every hook
    event           TEXT NOT NULL,          -- call.missed | text.sent | ...
    fact            TEXT NOT NULL,          -- what it reports, e.g. "message:42"
    hook            TEXT NOT NULL,          -- WebhookConfig.key (a digest of its URL)
    body            TEXT NOT NULL,
    created_at      REAL NOT NULL,
    state           TEXT NOT NULL DEFAULT 'queued'
                    CHECK (state IN ('queued', 'delivered', 'failed')),
    attempts        INTEGER NOT NULL DEFAULT 0,
    next_attempt_at REAL NOT NULL,
    last_error      TEXT,
    delivered_at    REAL,
    UNIQUE (hook, event, fact)
);
CREATE INDEX webhook_deliveries_due ON webhook_deliveries (state, next_attempt_at);
"""

# Staff notifications on every channel (issue 15): the durable staff e-mail queue
# (textback/inbound/staff_mail.py) also carries Apprise notifications (ntfy, Telegram,
# Matrix...). ``channel`` is 'email' (``recipients``: addresses, one per line, as before) or
# 'apprise' (``recipients``: the digest of one [did.staff] notify URL, never the URL itself,
# which usually holds a token; the URL is looked up in the config when sending).
V10 = """
ALTER TABLE staff_mail ADD COLUMN channel TEXT NOT NULL DEFAULT 'email'
    CHECK (channel IN ('email', 'apprise'));
"""

# The office's web app (issue 15). ``web_users``/``web_sessions`` are written only by
# textback/web/auth.py (passwords as argon2 hashes, sessions and one-time login tokens as
# SHA-256 of the random token, so a copy of the store logs no one in); ``audit`` only by
# textback/web/audit.py (every change made from the web app or ``textback user``: who, what,
# when); ``conversation_desk`` only by textback/inbound/desk.py (staff's take-over, the
# outcome of a conversation, when staff last read it). follow-ups read ``conversation_desk``:
# a conversation taken over gets no automatic follow-up (outbound/followups.py).
V11 = """
CREATE TABLE web_users (
    id            INTEGER PRIMARY KEY,
    name          TEXT NOT NULL UNIQUE,
    password_hash TEXT NOT NULL,           -- argon2id, PHC string
    created_at    REAL NOT NULL,
    updated_at    REAL NOT NULL
);
CREATE TABLE web_sessions (
    token_hash  TEXT PRIMARY KEY,          -- sha256 hex of the cookie / link token
    kind        TEXT NOT NULL CHECK (kind IN ('session', 'login-link')),
    user_name   TEXT NOT NULL,
    csrf        TEXT NOT NULL,             -- the session's CSRF token ('' for a link)
    created_at  REAL NOT NULL,
    expires_at  REAL NOT NULL,
    used_at     REAL                       -- a login link works once
);
CREATE INDEX web_sessions_user ON web_sessions (user_name);
CREATE TABLE audit (
    id      INTEGER PRIMARY KEY,
    at      REAL NOT NULL,
    actor   TEXT NOT NULL,                 -- web user name, or cli:<unix user>
    action  TEXT NOT NULL,                 -- e.g. reply, take-over, outcome, optout-add
    target  TEXT,                          -- a number, a conversation id, a user name
    detail  TEXT
);
CREATE INDEX audit_at ON audit (at);
CREATE TABLE conversation_desk (
    conversation_id INTEGER PRIMARY KEY REFERENCES conversations (id),
    number          TEXT NOT NULL,
    did             TEXT NOT NULL,
    taken_over_by   TEXT,                  -- NULL: automatic follow-ups run
    taken_over_at   REAL,
    outcome         TEXT CHECK (outcome IN ('booked', 'callback-done', 'not-a-lead', 'spam')),
    outcome_by      TEXT,
    outcome_at      REAL,
    read_at         REAL,                  -- replies after this are unread
    staff_at        REAL                   -- staff's last reply from the web app
);
CREATE INDEX conversation_desk_number ON conversation_desk (number, did);
"""

MIGRATIONS: tuple[str, ...] = (V1, V2, V3, V4, V5, V6, V7, V8, V9, V10, V11)

LATEST = len(MIGRATIONS)
