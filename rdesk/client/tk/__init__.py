"""The Tk faces of the client: the desktop viewer window and the recording player.

Importing this package imports no toolkit: :mod:`tkinter` comes in with
:mod:`rdesk.client.tk.window` and :mod:`rdesk.client.tk.player` only. The toolkit-free parts
(:mod:`~rdesk.client.tk.viewport`, :mod:`~rdesk.client.tk.keys`,
:mod:`~rdesk.client.tk.keyboard`, :mod:`~rdesk.client.tk.overlay`) are unit-tested without a
display.
"""
