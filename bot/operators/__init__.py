"""The operators of the web console: accounts and their audit (accounts.py), what the
console's pages show (views.py), the CSV exports it and `ovbot export` share (exports.py).

A use case beside customers, agents and payments; Flask lives at the edge
(webhooks/console/), never here.
"""
