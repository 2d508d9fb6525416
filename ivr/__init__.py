"""IVR: flow schema, loader and validator, engine, TwiML rendering, actions."""
