"""Mail bodies from templates: a subject, a plain-text and an HTML body per kind.

`string.Template` keeps the templates free of logic. Every value is escaped for the
HTML body (values come from users: names, shop titles), never for the text body.
"""

from __future__ import annotations

import html
from dataclasses import dataclass
from string import Template


@dataclass(frozen=True)
class Rendered:
    subject: str
    text: str
    html: str


@dataclass(frozen=True)
class MailTemplate:
    subject: Template
    text: Template
    html: Template

    def render(self, **values: object) -> Rendered:
        plain = {key: str(value) for key, value in values.items()}
        escaped = {key: html.escape(value, quote=True) for key, value in plain.items()}
        return Rendered(
            subject=" ".join(self.subject.substitute(plain).split()),  # no header injection
            text=self.text.substitute(plain),
            html=self.html.substitute(escaped),
        )


def _template(subject: str, text: str, body: str) -> MailTemplate:
    page = (
        '<!doctype html><html><body style="font-family: sans-serif">'
        f"{body}<p>Stream Cart</p></body></html>"
    )
    return MailTemplate(Template(subject), Template(text + "\n-- \nStream Cart\n"), Template(page))


PASSWORD_RESET = _template(
    "Reset your Stream Cart password",
    "Hello $name,\n\nUse this token to choose a new password within $minutes minutes:\n\n"
    "$token\n\nOr open $link\n\nIf you did not ask for this, ignore this mail.\n",
    "<p>Hello $name,</p><p>Use this token to choose a new password within $minutes "
    'minutes:</p><p><code>$token</code></p><p><a href="$link">Choose a new password</a></p>'
    "<p>If you did not ask for this, ignore this mail.</p>",
)

EMAIL_CODE = _template(
    "Your Stream Cart verification code: $code",
    "Hello $name,\n\nYour code is $code. It is valid for $minutes minutes.\n",
    "<p>Hello $name,</p><p>Your code is <strong>$code</strong>. It is valid for $minutes "
    "minutes.</p>",
)

NOTIFICATION = _template(
    "$title",
    "Hello $name,\n\n$body\n\n$link\n",
    '<p>Hello $name,</p><p>$body</p><p><a href="$link">$link</a></p>',
)
