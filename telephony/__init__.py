"""Telephony providers: the Twilio adapter and the local sandbox emulator."""
