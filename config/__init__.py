"""The folder operators edit, shipped in the wheel as the package `bot.config` (setup.py):
`messages/<lang>.toml` (the reply wording), `example.env`, and `gunicorn.conf.py` (which
`ovbot serve` hands gunicorn).  To change the wording, copy `messages/` to a folder of
your own and point OVBOT_CONFIG_DIR at it (the folder holding `messages/`)."""
