"""The template editor's form for each Elemental element type (rendered by designer.js).

Validation stays the API's (``NotificationService`` → ``templates.render.validate_content``).
"""

from __future__ import annotations

from relaybox.templates.elemental import ELEMENT_TYPES
from relaybox.ui.step_forms import field as _f

ALIGN = ["", "left", "center", "right", "full"]

FORMS = {
    "meta": [_f("title", "Subject / title", help="Handlebars, e.g. Order {{order_id}}")],
    "text": [
        _f("content", "Text", "longtext", "Handlebars and **markdown**-style text."),
        _f("text_style", "Style", "select", options=["", "text", "h1", "h2", "subtext"]),
        _f("align", "Align", "select", options=ALIGN),
    ],
    "action": [
        _f("content", "Button text", required=True),
        _f("href", "Link", required=True),
        _f("style", "Style", "select", options=["", "button", "secondary", "tertiary", "link"]),
        _f("align", "Align", "select", options=ALIGN),
    ],
    "divider": [],
    "quote": [_f("content", "Quote", "longtext", required=True)],
    "image": [
        _f("src", "Image URL", required=True),
        _f("alt_text", "Alternative text"),
        _f("href", "Link"),
        _f("width", "Width", help="e.g. 300px or 50%"),
    ],
    "html": [_f("content", "HTML", "longtext", "Email only.", required=True)],
    "channel": [
        _f("channel", "Channel", required=True, help="email, sms, push…"),
        _f("elements", "Elements", "json", "The elements used on that channel only."),
    ],
}

COMMON = [
    _f("channels", "Only on channels", "json", 'e.g. ["email"]; empty: every channel.'),
    _f("if", "Show if", help="e.g. data.vip or !profile.unsubscribed"),
]

#: The "new element" menu, most used first.
TYPES = ["meta", "text", "action", "image", "divider", "quote", "html", "channel"]

assert set(FORMS) == set(ELEMENT_TYPES) == set(TYPES), "every element type has a form"
