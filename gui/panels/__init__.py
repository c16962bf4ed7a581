"""Small panels, each pulling from the :class:`gui.session.Session` (or the run controller)."""
