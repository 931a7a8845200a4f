"""The safeguarding leads' web workspace (`sgledger serve`): FastAPI, Jinja2, GOV.UK Frontend."""
