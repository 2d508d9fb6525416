"""Russian names of the stored vocabularies (outcomes, statuses, channels …) for the console's
pages: ``{{ value | label("outcome") }}`` shows the name, or the value itself when it has none.
"""

from __future__ import annotations

from campaigns.report_export import OUTCOME_LABELS, SKIP_LABELS, STATUS_LABELS
from web.console import bp

VOCABULARIES: dict[str, dict[str, str]] = {
    "outcome": {
        "completed_in_ivr": "завершён в голосовом меню",
        "hung_up_in_ivr": "положил трубку в меню",
        "transferred_queue": "передан оператору",
        "transferred_number": "переадресован на номер",
        "busy": "занято",
        "no-answer": "нет ответа",
        "no_answer": "нет ответа",
        "failed": "не состоялся",
        "canceled": "отменён",
        "answered": "ответил",
        "machine": "автоответчик",
        "machine_message": "сообщение на автоответчик",
        "delivered": "доставлено",
        "undelivered": "не доставлено",
        "sent_unconfirmed": "отправлено, доставка не подтверждена",
        "received": "получено",
        "opted_out": "отказ от контактов",
        "operator_consulted": "консультация оказана",
        "operator_reading_taken": "показания приняты",
        "operator_payment_promised": "обещание оплаты",
        "operator_complaint": "жалоба",
        "operator_callback": "нужен перезвон",
        "operator_escalated": "передано специалисту",
        "operator_wrong_person": "не тот абонент",
        "none": "без итога",
    },
    "attempt": OUTCOME_LABELS,
    "skip": SKIP_LABELS,
    "campaign_status": {**STATUS_LABELS, "launching": "запускается"},
    "channel": {
        "voice": "звонок",
        "sms": "SMS",
        "email": "e-mail",
        "voice_then_sms": "звонок, затем SMS",
        "any": "все каналы",
    },
    "direction": {"inbound": "входящий", "outbound": "исходящий"},
    "call_status": {
        "queued": "в очереди",
        "initiated": "набор",
        "ringing": "звонит",
        "in-progress": "идёт",
        "completed": "завершён",
        "busy": "занято",
        "failed": "ошибка",
        "no-answer": "нет ответа",
        "canceled": "отменён",
        "started": "начат",
        "sent": "отправлено",
        "delivered": "доставлено",
        "undelivered": "не доставлено",
        "received": "получено",
    },
    "target_state": {
        "pending": "ожидает",
        "scheduled": "запланирован",
        "in_progress": "в работе",
        "retry": "повтор",
        "done": "завершён",
        "skipped": "пропущен",
        "failed": "ошибка",
        "cancelled": "отменён",
    },
    "reading_source": {
        "ivr_voice": "голосом",
        "ivr_dtmf": "с клавиатуры",
        "sms": "SMS",
        "web": "сайт",
        "operator": "оператор",
        "ami": "АСКУЭ",
        "import": "импорт",
        "voice": "голосом",
        "keypad": "с клавиатуры",
        "other": "другие",
    },
    "purpose": {
        "service_notice": "сервисные уведомления",
        "debt_notice": "уведомления о долге",
        "marketing": "реклама",
        "robot_calls": "звонки робота",
        "e_receipt": "электронная квитанция",
    },
    "dnc_source": {
        "sms_stop": "СТОП по SMS",
        "ivr_opt_out": "отказ в голосовом меню",
        "supervisor": "внесён сотрудником",
        "provider_opt_out": "отказ у оператора связи",
    },
    "case_type": {
        "callback": "перезвон",
        "already_paid": "уже оплачено",
        "outage": "отключение",
        "meter_service": "обслуживание счётчика",
        "complaint": "жалоба",
        "voicemail": "голосовое сообщение",
        "reading_dispute": "спор о показаниях",
    },
    "case_status": {
        "open": "открыто",
        "in_progress": "в работе",
        "resolved": "решено",
        "closed": "закрыто",
    },
    "account_status": {
        "active": "действует",
        "closed": "закрыт",
        "suspended": "приостановлен",
        "restricted": "ограничен",
    },
    "handoff": {
        "account_number": "лицевой счёт",
        "reason": "причина",
        "last_step": "последний шаг",
        "caller": "звонящий",
        "call_sid": "идентификатор звонка",
        "intent": "намерение",
        "reading": "показания",
        "readings": "показания",
        "caller_request": "по просьбе абонента",
        "error": "сбой в голосовом меню",
        "debt": "вопрос о долге",
    },
    "aging": {"0-30": "до 30 дней", "31-90": "31–90 дней", "91+": "более 90 дней"},
    "amd": {
        "leave_message": "оставить сообщение",
        "hangup_retry": "положить трубку и перезвонить",
    },
}


@bp.app_template_filter("label")
def label(value: object, vocabulary: str) -> str:
    """The Russian name of ``value`` in ``vocabulary`` (the value itself when unnamed)."""
    if value is None:
        return VOCABULARIES.get(vocabulary, {}).get("none", "—")
    text = str(value)
    return VOCABULARIES.get(vocabulary, {}).get(text, text)
