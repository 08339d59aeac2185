"""The screen: capturing it (zero-copy MIT-SHM or mss), change notification (X DAMAGE), the
virtual display, and the one :class:`~rdesk.host.screen.source.ScreenSource` viewers share.

Nothing here knows about viewers, sockets or encodings.
"""
