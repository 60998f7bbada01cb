"""What a send step delivers: to whom, and how untrusted data is rendered."""

from __future__ import annotations

from relaybox_harness import SmtpServer, Workspace, unique, unique_email


def test_send_step_recipient_gets_their_own_profile_address(
    ws: Workspace, smtp: SmtpServer
) -> None:
    """A send step naming another recipient mails that recipient, not the run's recipient."""
    template = unique("FOR_STEP")
    ws.add_template(template, "Note {{n}}", "Note body {{n}}")
    client = ws.client()
    other, run_user = unique("other"), unique("runner")
    other_email, run_email = unique_email("other"), unique_email("runner")
    # Store the other user's profile (invoke merges the given profile into the stored one).
    seeded = client.automations.invoke.invoke_ad_hoc(
        automation={"steps": []}, recipient=other, profile={"email": other_email}
    )
    ws.wait_run(seeded.run_id, "PROCESSED")

    response = client.automations.invoke.invoke_ad_hoc(
        automation={"steps": [{"action": "send", "template": template, "recipient": other}]},
        recipient=run_user,
        profile={"email": run_email},
        data={"n": "x1"},
    )
    ws.wait_run(response.run_id, "PROCESSED", "ERROR")
    (step,) = ws.steps(response.run_id)
    assert step.message_id
    assert client.messages.retrieve(step.message_id).recipient == other
    assert smtp.recorder.to(run_email) == [], "the run's recipient got another user's message"
    (mail,) = smtp.recorder.wait_for(other_email)
    assert mail.subject == "Note x1"


def test_data_cannot_inject_headers_and_is_escaped_in_html(ws: Workspace, smtp: SmtpServer) -> None:
    """CR/LF in data adds no header or recipient; markup in data is escaped in the HTML part."""
    template = unique("UNTRUSTED")
    ws.add_template(template, "Hello {{x}}", "Body {{x}}")
    client = ws.client()
    injected, bcc = unique_email("inject"), unique_email("bcc")
    response = client.automations.invoke.invoke_ad_hoc(
        automation={"steps": [{"action": "send", "template": template}]},
        recipient=unique("u"),
        profile={"email": injected},
        data={"x": f"1\r\nBcc: {bcc}"},
    )
    ws.wait_run(response.run_id, "PROCESSED", "ERROR")
    assert smtp.recorder.to(bcc) == []
    for mail in smtp.recorder.to(injected):
        assert mail.rcpt_tos == (injected,)
        assert "Bcc" not in mail.headers

    marked = unique_email("markup")
    client.automations.invoke.invoke_ad_hoc(
        automation={"steps": [{"action": "send", "template": template}]},
        recipient=unique("u"),
        profile={"email": marked},
        data={"x": "<script>alert(1)</script>"},
    )
    (mail,) = smtp.recorder.wait_for(marked)
    assert mail.text is not None
    assert "<script>alert(1)</script>" in mail.text
    assert mail.html is not None
    assert "<script>" not in mail.html
    assert "&lt;script&gt;" in mail.html
