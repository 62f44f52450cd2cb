"""The folder operators edit, shipped in the wheel as the package `bot.config` (setup.py):
`messages/<lang>.toml` (the reply wording), `example.env` and `gunicorn.conf.py`.  To change
the wording, copy `messages/` elsewhere and point OVBOT_CONFIG_DIR at its parent."""
