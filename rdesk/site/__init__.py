"""The browser viewer's static site (``rdesk/web/``) and the ``Origin`` rule, shared by the host
and the relay, which both serve the page; standard library and websockets' HTTP types only."""
