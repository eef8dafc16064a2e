"""Pages about the service itself: the accessibility statement."""
