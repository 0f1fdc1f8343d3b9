"""The public survey page a customer reaches from a signed, expiring link."""

from __future__ import annotations

import logging

from flask import Blueprint, render_template, request
from flask_babel import lazy_gettext as _l
from flask_wtf import FlaskForm
from wtforms import RadioField, TextAreaField
from wtforms.validators import DataRequired, Length, Optional

from ..extensions import limiter
from ..services import surveys
from ..services.surveys import SurveyError

bp = Blueprint("survey", __name__, url_prefix="/survey")
log = logging.getLogger(__name__)

_STATUS = {"invalid": 404, "expired": 410, "answered": 409}


CHOOSE_AN_ANSWER = _l("Choose an answer.")


class AnswerForm(FlaskForm):
    # WTForms' own messages for a value that is no number ("could not coerce") or not on the scale
    # speak of coercing and choices: the customer reads the same request as for no answer.
    score = RadioField(_l("Your answer"), coerce=int, validators=[DataRequired(message=CHOOSE_AN_ANSWER)],
                       invalid_value_message=CHOOSE_AN_ANSWER, invalid_choice_message=CHOOSE_AN_ANSWER)
    comment = TextAreaField(_l("Anything you would like to add? (optional)"), validators=[Optional(), Length(max=2000)])


def _refused(exc: SurveyError):
    log.info("survey link refused from %s: %s", request.remote_addr, exc.reason)
    return render_template("survey/closed.html", reason=exc.reason), _STATUS.get(exc.reason, 400)


@bp.route("/<token>", methods=["GET", "POST"])
@limiter.limit("30/minute")
def answer(token: str):
    try:
        survey = surveys.load_token(token)
    except SurveyError as exc:
        return _refused(exc)
    scale = surveys.SCALES[survey.kind]
    form = AnswerForm()
    # DataRequired fails on a 0 score (NPS), so 0 is offered as a choice and checked by the scale.
    form.score.validators = [Optional()]
    form.score.choices = [(n, str(n)) for n in range(scale.low, scale.high + 1)]
    if request.method == "GET" and request.args.get("score", "").isdigit():
        form.score.data = int(request.args["score"])  # the number clicked in the email, preselected
    if form.validate_on_submit():
        if form.score.data is None:
            form.score.errors = [CHOOSE_AN_ANSWER]
        else:
            try:
                surveys.record(survey, form.score.data, via="link", comment=form.comment.data or "")
            except SurveyError as exc:
                if exc.reason == "bad_score":
                    form.score.errors = [CHOOSE_AN_ANSWER]
                else:
                    return _refused(exc)
            else:
                return render_template("survey/thanks.html")
    elif request.method == "POST":
        log.info("survey %s form refused: %s", survey.id, form.errors)
    status = 400 if request.method == "POST" else 200
    return render_template("survey/answer.html", form=form, scale=scale, survey=survey), status
