"""What the API, the pages and the admin share for HTTP: token authentication, throttles, audio
responses, and the one table that maps a refusal's code to its status (`errors.py`).

It sits above the services (it calls them) and below `apis`, `web` and the admin, which all import
it; it never imports `apis` or `web` (`make lint`).
"""
