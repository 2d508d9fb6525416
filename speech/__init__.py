"""Speech: audio decoding, Vosk recognition sessions, grammars, number understanding."""
