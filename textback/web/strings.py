"""Every word the web app shows, in one place (English; a translation replaces this module).

Keys of ``NOTES`` are what a form's redirect carries (``?note=reply-queued``), so a URL never
carries the text itself and nothing in a URL is ever shown as anything but a known message
(plus an escaped detail).
"""

from __future__ import annotations

APP = "textback"
NAV_INBOX = "Inbox"
NAV_DASHBOARD = "Dashboard"
NAV_HEALTH = "Health"
NAV_OPTOUTS = "Opt-outs"
LOGOUT = "Log out"
SIGNED_IN_AS = "Signed in as {user}"
SKIP_TO_CONTENT = "Skip to content"

LOGIN_TITLE = "Log in"
LOGIN_USER = "User name"
LOGIN_PASSWORD = "Password"
LOGIN_BUTTON = "Log in"
LOGIN_FAILED = "Wrong user name or password."
LOGIN_LIMITED = ("Too many failed logins. Wait {minutes} minute(s) and try again, or ask the "
                 "admin (textback user add) to reset your password.")
LOGIN_LINK_BAD = "This login link was used already or has expired. Log in with your password."
CSRF_REFUSED = ("This form expired or did not come from this site (missing security token). "
                "Go back, reload the page and try again.")
NOT_FOUND = "Not found."
SLOW_DOWN = "Too many requests from this session: wait a second and reload."

INBOX_TITLE = "Inbox"
INBOX_EMPTY = "No conversations yet: they start when a customer answers a text."
INBOX_UNREAD = "{n} unread"
INBOX_LINE = "to {line}"
INBOX_TAKEN_OVER = "taken over by {user}"
INBOX_OPTED_OUT = "opted out"
INBOX_REVIEW = "possible opt-out"
LIVE_NOTE = "New replies appear here by themselves."

CONV_TITLE = "Conversation with {number}"
CONV_CALL = "Missed call"
CONV_CALLS = "Other calls from this number"
DESK_TITLE = "Handling"
CONV_NO_CALL = "No missed call from this number to this line is recorded."
CALL_AT = "When"
CALL_DID = "Line (DID)"
CALL_REASON = "Reason"
CALL_RING = "Rang"
CALL_VOICEMAIL = "Voicemail"
YES = "yes"
NO = "no"
CONV_TEXTS = "Texts"
CONV_NO_TEXTS = "No texts yet."
FROM_CUSTOMER = "Customer"
FROM_US = "Us"
CONV_OPTED_OUT = "This number has opted out: nothing can be texted to it."
CONV_FOLLOWUPS = "Automatic follow-ups pending"
CONV_NO_FOLLOWUPS = "No automatic follow-up is pending."
FOLLOWUP_LINE = "Follow-up {touch} due {at}"
CONV_TAKEN_OVER = "Taken over by {user} at {at}: no automatic follow-ups."
TAKE_OVER = "Take over"
TAKE_OVER_HINT = "Stops the automatic follow-ups while you handle this customer."
HAND_BACK = "Hand back"
HAND_BACK_HINT = "Lets the automatic follow-ups run again."
REPLY_LABEL = "Reply"
REPLY_BUTTON = "Send reply"
REPLY_HINT = "Sent from this line's own number, through the same checks as every text."
OUTCOME_LABEL = "Outcome"
OUTCOME_BUTTON = "Save outcome"
OUTCOME_NONE = "(not set)"
OUTCOME_NAMES = {"booked": "Booked", "callback-done": "Callback done",
                 "not-a-lead": "Not a lead", "spam": "Spam"}
HISTORY_TITLE = "What staff did"
HISTORY_EMPTY = "Nothing yet."
ACTIONS = {"reply": "replied", "reply-refused": "reply refused", "take-over": "took over",
           "hand-back": "handed back", "outcome": "set the outcome",
           "review-optout": "confirmed an opt-out", "review-not-optout": "not an opt-out",
           "optout-add": "opted the number out", "optout-remove": "removed the opt-out"}
REVIEW_BANNER = ("This reply may be an opt-out: \u201c{body}\u201d. Nothing automatic is "
                 "texted to the number until someone decides.")
REVIEW_OPTOUT = "It is an opt-out"
REVIEW_NOT_OPTOUT = "Not an opt-out"

STATE_NAMES = {"queued": "queued", "sending": "sending", "sent": "sent",
               "delivered": "delivered", "failed": "failed",
               "unconfirmed": "unconfirmed", "sent-unconfirmed": "unconfirmed",
               "cancelled": "cancelled", "skipped": "refused", "received": "received"}

DASH_TITLE = "Dashboard"
DASH_PERIOD = "Period"
DASH_DID = "Line"
DASH_ALL_LINES = "All lines"
DASH_SHOW = "Show"
PERIODS = {"7": "Last 7 days", "30": "Last 30 days", "90": "Last 90 days",
           "365": "Last year", "all": "Everything"}
FUNNEL = "From missed call to booking"
FUNNEL_STEPS = {"missed": "Missed calls", "texted": "Texted", "replied": "Replied",
                "booked": "Booked"}
SKIPS = "Not texted, by reason"
NO_SKIPS = "Every missed call was texted."
MEDIAN_TEXT = "Median time from hang-up to text"
NO_VALUE = "\u2013"
SECONDS = "{n} s"
REPLY_BY_HOUR = "Reply rate by hour of the missed call"
REPLY_BY_WEEKDAY = "Reply rate by day of the week"
MISSED_PER_DAY = "Missed calls per day"
NO_DATA = "No missed calls in this period."
WEEKDAY_NAMES = ("Mon", "Tue", "Wed", "Thu", "Fri", "Sat", "Sun")
OUTCOMES_TITLE = "Outcomes"

HEALTH_TITLE = "Health"
HEALTH_VERDICT = "Verdict"
HEALTH_MODEMS = "Modems"
HEALTH_PBX = "PBX link"
HEALTH_OUTBOX = "Outbox"
HEALTH_STORE = "Store"
HEALTH_TODAY = "Today"
HEALTH_NO_DAEMON = "No status file: is the daemon running?"
SIGNAL_DBM = "{dbm} dBm"
PBX_UP = "connected"
PBX_DOWN = "NOT connected"
STORE_OK = "OK"
OUTBOX_EMPTY = "empty"
TODAY_LINE = "missed {missed}, answered {answered}; texts {texts}; replies {replies}"
MODEM_COLUMNS = ("Modem", "State", "SIM", "Signal", "Registration", "Operator", "Last send")

OPTOUT_TITLE = "Opt-outs"
OPTOUT_SEARCH = "Search numbers"
OPTOUT_SEARCH_BUTTON = "Search"
OPTOUT_EMPTY = "No number is on the do-not-text list."
OPTOUT_COLUMNS = ("Number", "Since", "Source", "Reason or message", "")
OPTOUT_ADD = "Add a number to the do-not-text list"
OPTOUT_NUMBER = "Phone number"
OPTOUT_REASON = "Reason (kept in the audit log)"
OPTOUT_ADD_BUTTON = "Opt out"
OPTOUT_REMOVE_BUTTON = "Remove"
OPTOUT_REMOVE_REASON = "Reason for removing {number}"
REASON_PLACEHOLDER = "reason"

NOTES = {
    "reply-queued": "Reply queued: it goes out from the line's own number.",
    "reply-empty": "Write a reply first.",
    "reply-too-long": "The reply is too long (at most {limit} characters).",
    "reply-refused": "Not sent: {detail}",
    "reply-review": "Not sent: decide first whether the customer's last text is an opt-out.",
    "taken-over": "You have taken over this conversation; {detail} follow-up(s) stopped.",
    "handed-back": "Handed back; {detail} follow-up(s) scheduled again.",
    "outcome-saved": "Outcome saved.",
    "outcome-bad": "Choose one of the outcomes.",
    "review-optout": "Opted out: nothing more will be texted to this number.",
    "review-not-optout": "Marked as not an opt-out: texts may go to this number again.",
    "review-none": "No possible opt-out was waiting for a decision.",
    "optout-added": "{detail} is on the do-not-text list now.",
    "optout-already": "{detail} was already on the do-not-text list.",
    "optout-removed": "{detail} was removed from the do-not-text list.",
    "optout-not-listed": "{detail} is not on the do-not-text list.",
    "optout-bad-number": "{detail} is not a phone number (write +15551230001, or a national "
                         "number).",
    "optout-no-reason": "Give a reason: it is kept in the audit log.",
    "no-line": "This conversation's line is no longer configured; it is read-only.",
}

REFUSALS = {"opted-out": "the customer has opted out of texts. Call them instead."}
